/* Line framing of one output stream: bytes in, log-event lines of valid UTF-8 out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Rules (what a log event's text will be):
 *   - "\n", "\r\n" and a lone "\r" each end a line; the terminator is not part of the text. A
 *     "\r\n" split across writes is still one terminator. Empty lines are lines.
 *   - A line longer than HG_FRAMER_MAX_TEXT bytes (of text as delivered, after the
 *     replacements below) is delivered in pieces of at most that size, all but the last with
 *     partial = true. A piece never ends inside a UTF-8 sequence.
 *   - Text is always valid UTF-8: each maximal ill-formed subsequence (a stray continuation
 *     byte, an overlong form, a surrogate, a code point above U+10FFFF, a sequence cut short by
 *     another byte, a line end or the end of the stream) becomes one U+FFFD.
 *   - A NUL byte becomes U+FFFD too, so text is also a C string (JSON libraries that take C
 *     strings would otherwise cut the line short there). Other control characters are kept.
 *   - The timestamp of a piece is the read time of its first byte (for an empty line, of its
 *     terminator): when the line began, which is what a reader of the log expects.
 *   - A last line without a terminator is delivered by hg_framer_finish.
 * Delivery is by callback with text pointing into the framer's own buffer (valid until the
 * callback returns, NUL-terminated). The buffer grows with the line being built and is let go
 * after a long line ends, so an idle stream holds little memory (a run has two of them, and an
 * agent many runs); ordinary lines reuse it without allocating.
 */

#define HG_FRAMER_MAX_TEXT 65536

/* Receives one line (or piece). Returns 0, or a negative code that makes the write or finish
 * that delivered it stop and return that code. */
typedef int (*hg_framer_line_fn)(void *ud, const char *text, size_t len, bool partial,
                                 int64_t ts_ms);

typedef struct hg_framer {
  hg_framer_line_fn on_line;
  void *ud;
  char *buf;         /* the piece being built; at most HG_FRAMER_MAX_TEXT + 1 bytes */
  size_t len, cap;
  int64_t ts;        /* read time of the piece's first byte */
  bool started;      /* bytes of the current piece have arrived */
  bool after_cr;     /* the last line ended with '\r': a '\n' next belongs to it */
  unsigned char seq[4]; /* an unfinished UTF-8 sequence */
  uint8_t nseq, need;   /* bytes of it seen, bytes it needs */
  uint8_t lo, hi;       /* range allowed for its next byte */
  int failed;
  /* During on_line: false when the text holds no byte a JSON string escapes ('"', '\\', a
   * control character), true when it may (then look), for a consumer that writes the text as
   * JSON and so need not look at it again. */
  bool escapes;
} hg_framer;

/* Returns 0 (allocates nothing: the piece buffer comes with the first byte). */
int hg_framer_init(hg_framer *f, hg_framer_line_fn on_line, void *ud);
void hg_framer_free(hg_framer *f);
/* Frames len bytes read at ts_ms. Returns 0, HG_ENOMEM or the callback's negative code (after
 * which the framer only returns that code again). */
int hg_framer_write(hg_framer *f, const void *bytes, size_t len, int64_t ts_ms);
/* End of stream: delivers an unterminated last line. The framer may then take a new stream. */
int hg_framer_finish(hg_framer *f);
/* hg_framer_write with the signature of hg_redact_emit_fn (framer passed as ud), so a redaction
 * scanner can feed a framer directly. */
int hg_framer_emit(void *framer, const char *bytes, size_t len, int64_t ts_ms);
