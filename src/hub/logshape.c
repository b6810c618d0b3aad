/* The usual log event's constant parts, as cJSON prints them. */
#include "hub/logshape.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define TS_MARK "@@hg-ts@@"
#define TEXT_MARK "@@hg-text@@"

/* Made once and never changed: a constant of the process, like a table. */
static struct {
  hg_logshape shape;
  char head[64], mid[3][64], tail[2][32];
  bool ok;
} made;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool copy_part(char *dst, size_t cap, size_t *len, const char *from, const char *to) {
  if (!from || !to || to < from || (size_t)(to - from) >= cap) return false;
  memcpy(dst, from, (size_t)(to - from));
  *len = (size_t)(to - from);
  return true;
}

/* Splits what cJSON prints for each stream and partial value around the two markers. */
static void make(void) {
  static const char *const streams[3] = {"stdout", "stderr", "system"};
  hg_logshape *s = &made.shape;
  bool ok = true;
  for (int st = 0; st < 3 && ok; st++) {
    for (int p = 0; p < 2 && ok; p++) {
      cJSON *o = cJSON_CreateObject();
      char *text = NULL;
      if (o && cJSON_AddStringToObject(o, "kind", "log") && cJSON_AddStringToObject(o, "ts", TS_MARK) &&
          cJSON_AddStringToObject(o, "stream", streams[st]) &&
          cJSON_AddStringToObject(o, "text", TEXT_MARK) && cJSON_AddBoolToObject(o, "partial", p))
        text = cJSON_PrintUnformatted(o);
      cJSON_Delete(o);
      const char *ts = text ? strstr(text, "\"" TS_MARK "\"") : NULL;
      const char *tx = text ? strstr(text, "\"" TEXT_MARK "\"") : NULL;
      const char *after_ts = ts ? ts + strlen(TS_MARK) + 2 : NULL;
      const char *after_tx = tx ? tx + strlen(TEXT_MARK) + 2 : NULL;
      ok = copy_part(made.head, sizeof made.head, &s->head_len, text, ts) &&
           copy_part(made.mid[st], sizeof made.mid[st], &s->mid_len[st], after_ts, tx) &&
           copy_part(made.tail[p], sizeof made.tail[p], &s->tail_len[p], after_tx,
                     after_tx ? after_tx + strlen(after_tx) : NULL);
      free(text);
    }
  }
  s->head = made.head;
  for (int i = 0; i < 3; i++) s->mid[i] = made.mid[i];
  for (int i = 0; i < 2; i++) s->tail[i] = made.tail[i];
  made.ok = ok;
}

const hg_logshape *hg_logshape_get(void) {
  pthread_once(&once, make);
  return made.ok ? &made.shape : NULL;
}
