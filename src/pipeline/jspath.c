/* JS-style paths: parsing (with byte offsets in errors), canonical formatting, comparison. */
#include "pipeline/jspath.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '$' || c == '-';
}

static bool is_ident_start(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool ends_path(char c) {
  return c == ' ' || c == '\t';
}

/* "'x'", "a space" or "byte 0x01": what was found where something else was expected. */
static void describe_at(const char *text, size_t len, size_t i, char *out, size_t outsz) {
  if (i >= len) {
    snprintf(out, outsz, "the end of the path");
    return;
  }
  unsigned char c = (unsigned char)text[i];
  if (c == ' ')
    snprintf(out, outsz, "a space");
  else if (c == '\t')
    snprintf(out, outsz, "a tab");
  else if (c > 0x20 && c < 0x7f)
    snprintf(out, outsz, "'%c'", c);
  else
    snprintf(out, outsz, "byte 0x%02x", c);
}

static int bad(hg_err *err, size_t at, const char *what, const char *text, size_t len) {
  char found[32];
  describe_at(text, len, at, found, sizeof found);
  return hg_err_set(err, HG_EINVAL, "invalid path at offset %zu: %s, found %s", at, what, found);
}

static int push(hg_jspath *p, hg_jspath_kind kind, char *key, size_t index) {
  hg_jspath_seg *segs = realloc(p->segs, (p->n + 1) * sizeof *segs);
  if (!segs) return HG_ENOMEM;
  p->segs = segs;
  p->segs[p->n++] = (hg_jspath_seg){kind, key, index};
  return 0;
}

int hg_jspath_push_key(hg_jspath *path, const char *key, size_t len) {
  if (memchr(key, '\0', len)) return HG_EINVAL;
  char *copy = malloc(len + 1);
  if (!copy) return HG_ENOMEM;
  memcpy(copy, key, len);
  copy[len] = '\0';
  int rc = push(path, HG_JSPATH_KEY, copy, 0);
  if (rc) free(copy);
  return rc;
}

/* A double-quoted key starting at text[q]: find the closing quote ourselves (so that the key's
 * end is known without trusting a parser with the rest of the line), then let cJSON decode it. */
static int dquoted(const char *text, size_t len, size_t q, char **key, size_t *next, hg_err *err) {
  size_t k = q + 1;
  for (; k < len; k++) {
    unsigned char c = (unsigned char)text[k];
    if (c == '"') break;
    if (c < 0x20)
      return hg_err_set(err, HG_EINVAL,
                        "invalid path at offset %zu: control character 0x%02x in a quoted key "
                        "(write it as an escape)",
                        k, c);
    if (c == '\\') {
      if (k + 1 >= len) {
        k = len;
        break;
      }
      /* Member names are C strings: a NUL inside one cannot be represented. */
      if (text[k + 1] == 'u' && k + 5 < len && memcmp(text + k + 2, "0000", 4) == 0)
        return hg_err_set(err, HG_EINVAL, "invalid path at offset %zu: a key may not contain NUL",
                          k);
      k++;
    }
  }
  if (k >= len)
    return hg_err_set(err, HG_EINVAL, "invalid path at offset %zu: unterminated quoted key", q);
  const char *parse_end = NULL;
  cJSON *s = cJSON_ParseWithLengthOpts(text + q, k + 1 - q, &parse_end, 0);
  if (!s || !cJSON_IsString(s)) {
    cJSON_Delete(s);
    size_t at = parse_end && parse_end >= text + q ? (size_t)(parse_end - text) : q;
    return hg_err_set(err, HG_EINVAL,
                      "invalid path at offset %zu: invalid escape in the quoted key starting at "
                      "offset %zu",
                      at, q);
  }
  *key = strdup(s->valuestring);
  cJSON_Delete(s);
  if (!*key) return HG_ENOMEM;
  *next = k + 1;
  return 0;
}

/* A single-quoted key: our own small escape set, documented in the header. */
static int squoted(const char *text, size_t len, size_t q, char **key, size_t *next, hg_err *err) {
  hg_buf out = HG_BUF_INIT;
  size_t k = q + 1;
  int rc = 0;
  for (; k < len && text[k] != '\''; k++) {
    unsigned char c = (unsigned char)text[k];
    if (c < 0x20) {
      rc = hg_err_set(err, HG_EINVAL,
                      "invalid path at offset %zu: control character 0x%02x in a quoted key "
                      "(write it as an escape)",
                      k, c);
      goto fail;
    }
    if (c == '\\') {
      if (k + 1 >= len) {
        k = len;
        break;
      }
      char e = text[++k];
      switch (e) {
        case '\\': case '\'': case '"': c = (unsigned char)e; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        default: {
          char found[32];
          describe_at(text, len, k, found, sizeof found);
          rc = hg_err_set(err, HG_EINVAL,
                          "invalid path at offset %zu: unknown escape \\%s in a single-quoted key "
                          "(use \\\\ \\' \\\" \\n \\r or \\t)",
                          k - 1, found);
          goto fail;
        }
      }
    }
    if ((rc = hg_buf_appendc(&out, (char)c))) goto fail;
  }
  if (k >= len) {
    rc = hg_err_set(err, HG_EINVAL, "invalid path at offset %zu: unterminated quoted key", q);
    goto fail;
  }
  *key = hg_buf_steal(&out);
  if (!*key) return HG_ENOMEM;
  *next = k + 1;
  return 0;
fail:
  hg_buf_free(&out);
  return rc;
}

static int bracket(hg_jspath *p, const char *text, size_t len, size_t i, size_t *next,
                   hg_err *err) {
  size_t j = i + 1;
  while (j < len && text[j] == ' ') j++;
  char *key = NULL;
  size_t index = 0;
  int rc;
  if (j < len && (text[j] == '"' || text[j] == '\'')) {
    rc = text[j] == '"' ? dquoted(text, len, j, &key, &j, err) : squoted(text, len, j, &key, &j, err);
    if (rc) return rc;
  } else if (j < len && text[j] >= '0' && text[j] <= '9') {
    size_t start = j;
    for (; j < len && text[j] >= '0' && text[j] <= '9'; j++) {
      index = index * 10 + (size_t)(text[j] - '0');
      if (index > HG_JSPATH_MAX_INDEX)
        return hg_err_set(err, HG_EINVAL,
                          "invalid path at offset %zu: array index too large (at most %u)", start,
                          HG_JSPATH_MAX_INDEX);
    }
  } else {
    return bad(err, j, "expected an array index or a quoted key", text, len);
  }
  while (j < len && text[j] == ' ') j++;
  if (j >= len || text[j] != ']') {
    free(key);
    return bad(err, j, "expected ']'", text, len);
  }
  rc = key ? push(p, HG_JSPATH_KEY, key, 0) : push(p, HG_JSPATH_INDEX, NULL, index);
  if (rc) {
    free(key);
    return hg_err_set(err, rc, "out of memory");
  }
  *next = j + 1;
  return 0;
}

int hg_jspath_scan(hg_jspath *path, const char *text, size_t len, size_t *end, hg_err *err) {
  hg_jspath p = HG_JSPATH_INIT;
  size_t i = 0;
  int rc = 0;
  while (i < len && !ends_path(text[i])) {
    if (text[i] == '[') {
      if ((rc = bracket(&p, text, len, i, &i, err))) goto fail;
      continue;
    }
    if (p.n > 0) {
      if (text[i] != '.') {
        rc = bad(err, i, "expected '.' or '['", text, len);
        goto fail;
      }
      i++;
    }
    size_t start = i;
    while (i < len && is_name_char((unsigned char)text[i])) i++;
    if (i == start) {
      rc = bad(err, i, "expected a member name", text, len);
      goto fail;
    }
    if ((rc = hg_jspath_push_key(&p, text + start, i - start))) {
      hg_err_set(err, rc, "out of memory");
      goto fail;
    }
  }
  *path = p;
  if (end) *end = i;
  return 0;
fail:
  hg_jspath_free(&p);
  *path = (hg_jspath)HG_JSPATH_INIT;
  return rc;
}

int hg_jspath_parse(hg_jspath *path, const char *text, size_t len, hg_err *err) {
  size_t end = 0;
  int rc = hg_jspath_scan(path, text, len, &end, err);
  if (rc) return rc;
  if (end < len) {
    hg_jspath_free(path);
    return bad(err, end, "expected the end of the path", text, len);
  }
  return 0;
}

static bool is_ident(const char *key) {
  if (!is_ident_start((unsigned char)key[0])) return false;
  for (const char *c = key + 1; *c; c++)
    if (!is_name_char((unsigned char)*c) || *c == '-') return false;
  return true;
}

static int format_segs(const hg_jspath *path, size_t n, hg_buf *out) {
  for (size_t k = 0; k < n; k++) {
    const hg_jspath_seg *s = &path->segs[k];
    int rc;
    if (s->kind == HG_JSPATH_INDEX) {
      rc = hg_buf_printf(out, "[%zu]", s->index);
    } else if (is_ident(s->key)) {
      rc = hg_buf_printf(out, "%s%s", k ? "." : "", s->key);
    } else {
      cJSON *str = cJSON_CreateString(s->key);
      char *quoted = str ? cJSON_PrintUnformatted(str) : NULL;
      cJSON_Delete(str);
      if (!quoted) return HG_ENOMEM;
      rc = hg_buf_printf(out, "[%s]", quoted);
      cJSON_free(quoted);
    }
    if (rc) return rc;
  }
  /* The root still yields a valid (empty) C string. */
  return hg_buf_append(out, "", 0);
}

int hg_jspath_format(const hg_jspath *path, hg_buf *out) {
  return format_segs(path, path->n, out);
}

int hg_jspath_describe(const hg_jspath *path, size_t n, hg_buf *out) {
  if (n > path->n) n = path->n;
  if (n == 0) return hg_buf_appends(out, "(root)");
  return format_segs(path, n, out);
}

bool hg_jspath_equal(const hg_jspath *a, const hg_jspath *b) {
  if (a->n != b->n) return false;
  for (size_t k = 0; k < a->n; k++) {
    const hg_jspath_seg *x = &a->segs[k], *y = &b->segs[k];
    if (x->kind != y->kind) return false;
    if (x->kind == HG_JSPATH_INDEX ? x->index != y->index : strcmp(x->key, y->key) != 0)
      return false;
  }
  return true;
}

void hg_jspath_free(hg_jspath *path) {
  for (size_t k = 0; k < path->n; k++) free(path->segs[k].key);
  free(path->segs);
  path->segs = NULL;
  path->n = 0;
}
