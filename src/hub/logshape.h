/* The log event in the shape agents print it: the constant parts cJSON prints around its two
 * strings, to know such an event by its bytes and to write it again from what varies. */
#pragma once

#include <stddef.h>

/*
 * {"kind":"log","ts":T,"stream":S,"text":X,"partial":P} with T and X JSON strings, S one of
 * stdout, stderr, system (0, 1, 2) and P false or true (0, 1), exactly as cJSON prints such an
 * object: head, T, mid[S], X, tail[P]. The batch reader takes an event of these bytes for a
 * valid log event once cJSON has read T and X; the store keeps such an event as S, P and the
 * insides of T and X, and gives back these same bytes.
 */
typedef struct hg_logshape {
  const char *head;
  size_t head_len;
  const char *mid[3];
  size_t mid_len[3];
  const char *tail[2];
  size_t tail_len[2];
} hg_logshape;

/* The shape, made once for the process (any thread); NULL if memory ran out that once. */
const hg_logshape *hg_logshape_get(void);
