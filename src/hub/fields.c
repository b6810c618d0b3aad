/* Typed access to request JSON with messages naming the field; canonical JSON; UTF-8 checks. */
#include "hub/fields.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsoncheck.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

const char *hg_fields_type_name(const cJSON *item) {
  if (!item || cJSON_IsNull(item)) return "null";
  if (cJSON_IsBool(item)) return "boolean";
  if (cJSON_IsNumber(item)) return "number";
  if (cJSON_IsString(item)) return "string";
  if (cJSON_IsArray(item)) return "array";
  if (cJSON_IsObject(item)) return "object";
  return "invalid";
}

bool hg_fields_is_int(const cJSON *item, int64_t *out) {
  if (!cJSON_IsNumber(item)) return false;
  double v = item->valuedouble;
  if (!isfinite(v) || v != floor(v) || fabs(v) > 9007199254740992.0) return false;
  if (out) *out = (int64_t)v;
  return true;
}

/* Finds the member; NULL when missing or null. */
static const cJSON *member(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return v && !cJSON_IsNull(v) ? v : NULL;
}

static int absent(const char *name, const char *where, bool required, hg_err *err) {
  if (required) return hg_err_set(err, HG_EINVAL, "%s%s: required", where, name);
  return 0;
}

static int wrong(const cJSON *v, const char *name, const char *where, const char *expected,
                 hg_err *err) {
  return hg_err_set(err, HG_EINVAL, "%s%s: expected %s, got %s", where, name, expected,
                    hg_fields_type_name(v));
}

int hg_fields_string(const cJSON *obj, const char *name, const char *where, bool required,
                     const char **out, hg_err *err) {
  const cJSON *v = member(obj, name);
  if (!v) return absent(name, where, required, err);
  if (!cJSON_IsString(v)) return wrong(v, name, where, "a string", err);
  *out = v->valuestring;
  return 0;
}

int hg_fields_int(const cJSON *obj, const char *name, const char *where, bool required,
                  int64_t *out, hg_err *err) {
  const cJSON *v = member(obj, name);
  if (!v) return absent(name, where, required, err);
  if (!hg_fields_is_int(v, out)) {
    if (cJSON_IsNumber(v))
      return hg_err_set(err, HG_EINVAL, "%s%s: expected an integer, got %g", where, name,
                        v->valuedouble);
    return wrong(v, name, where, "an integer", err);
  }
  return 0;
}

int hg_fields_bool(const cJSON *obj, const char *name, const char *where, bool required,
                   bool *out, hg_err *err) {
  const cJSON *v = member(obj, name);
  if (!v) return absent(name, where, required, err);
  if (!cJSON_IsBool(v)) return wrong(v, name, where, "a boolean", err);
  *out = cJSON_IsTrue(v);
  return 0;
}

/* The member when is() holds for it; what names the kind in the error ("an object"). */
static int typed(const cJSON *obj, const char *name, const char *where, bool required,
                 cJSON_bool (*is)(const cJSON *), const char *what, const cJSON **out,
                 hg_err *err) {
  const cJSON *v = member(obj, name);
  if (!v) return absent(name, where, required, err);
  if (!is(v)) return wrong(v, name, where, what, err);
  *out = v;
  return 0;
}

int hg_fields_object(const cJSON *obj, const char *name, const char *where, bool required,
                     const cJSON **out, hg_err *err) {
  return typed(obj, name, where, required, cJSON_IsObject, "an object", out, err);
}

int hg_fields_array(const cJSON *obj, const char *name, const char *where, bool required,
                    const cJSON **out, hg_err *err) {
  return typed(obj, name, where, required, cJSON_IsArray, "an array", out, err);
}

int hg_fields_string_map(const cJSON *obj, const char *name, const char *where, bool required,
                         const cJSON **out, hg_err *err) {
  const cJSON *map = NULL;
  int rc = hg_fields_object(obj, name, where, required, &map, err);
  if (rc || !map) return rc;
  for (const cJSON *m = map->child; m; m = m->next)
    if (!cJSON_IsString(m))
      return hg_err_set(err, HG_EINVAL, "%s%s.%s: expected a string, got %s", where, name,
                        m->string, hg_fields_type_name(m));
  *out = map;
  return 0;
}

/* ---- canonical JSON ---- */

static int cmp_members(const void *a, const void *b) {
  const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
  return strcmp(x->string, y->string);
}

/* A deep copy whose objects have their members in sorted order. */
static cJSON *sorted_copy(const cJSON *item) {
  if (cJSON_IsObject(item)) {
    size_t n = 0;
    for (const cJSON *c = item->child; c; c = c->next) n++;
    const cJSON **v = malloc((n ? n : 1) * sizeof *v);
    cJSON *out = cJSON_CreateObject();
    if (!v || !out) {
      free(v);
      cJSON_Delete(out);
      return NULL;
    }
    n = 0;
    for (const cJSON *c = item->child; c; c = c->next) v[n++] = c;
    qsort(v, n, sizeof *v, cmp_members);
    for (size_t i = 0; i < n; i++) {
      cJSON *c = sorted_copy(v[i]);
      if (!c) {
        free(v);
        cJSON_Delete(out);
        return NULL;
      }
      cJSON_AddItemToObject(out, v[i]->string, c);
    }
    free(v);
    return out;
  }
  if (cJSON_IsArray(item)) {
    cJSON *out = cJSON_CreateArray();
    if (!out) return NULL;
    for (const cJSON *c = item->child; c; c = c->next) {
      cJSON *e = sorted_copy(c);
      if (!e) {
        cJSON_Delete(out);
        return NULL;
      }
      cJSON_AddItemToArray(out, e);
    }
    return out;
  }
  return cJSON_Duplicate(item, 1);
}

char *hg_fields_canonical(const cJSON *item) {
  cJSON *copy = sorted_copy(item);
  if (!copy) return NULL;
  char *text = cJSON_PrintUnformatted(copy);
  cJSON_Delete(copy);
  return text;
}

char *hg_fields_print(const cJSON *item) { return cJSON_PrintUnformatted(item); }

/* ---- UTF-8 ---- */

bool hg_fields_utf8_valid(const char *text, size_t len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    /* Bodies are mostly ASCII: skip it eight bytes at a time. */
    while (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= len) break;
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (len - i - 1 < n) return false;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

/* Non-zero when a byte of w is below 0x20 or has its high bit set. */
static uint64_t unusual_bytes(uint64_t w) {
  return ((w - 0x2020202020202020ull) | w) & 0x8080808080808080ull;
}

/* Past the printable ASCII from s[i] on. Every event batch goes through here whole (megabytes
 * a request): with SSE2 thirty-two bytes a step, where the bytes below 0x20 and from 0x80 on are
 * exactly those below 0x20 as signed bytes, so one comparison finds both. */
static size_t plain_ascii(const unsigned char *s, size_t len, size_t i) {
#ifdef __SSE2__
  const __m128i space = _mm_set1_epi8(0x20);
  for (; i + 32 <= len; i += 32) {
    __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
    __m128i hit = _mm_or_si128(_mm_cmplt_epi8(a, space), _mm_cmplt_epi8(b, space));
    if (_mm_movemask_epi8(hit)) break;
  }
#endif
  while (i + 8 <= len) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    if (unusual_bytes(w)) break;
    i += 8;
  }
  return i;
}

int hg_fields_check_body(const char *text, size_t len, hg_err *err) {
  const unsigned char *s = (const unsigned char *)text;
  size_t i = 0;
  while (i < len) {
    i = plain_ascii(s, len, i);
    if (i >= len) break;
    unsigned char c = s[i];
    if (c < 0x20) {
      if (c != '\t' && c != '\n' && c != '\r')
        return hg_err_set(err, HG_EINVAL,
                          "body: a raw control character (0x%02x) at offset %zu; JSON wants it "
                          "escaped",
                          c, i);
      i++;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    /* Validated from here as the UTF-8 check does; its first invalid byte is reported. */
    size_t n = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!n || len - i < n || !hg_fields_utf8_valid(text + i, n))
      return hg_err_set(err, HG_EINVAL, "body: not valid UTF-8 at offset %zu", i);
    i += n;
  }
  return 0;
}

cJSON *hg_fields_parse_object(const char *b, size_t n, hg_err *err) {
  const char *end = NULL;
  cJSON *doc = cJSON_ParseWithLengthOpts(b, n, &end, 0);
  if (!doc) {
    const char *where = cJSON_GetErrorPtr();
    size_t off = where && where >= b && where <= b + n ? (size_t)(where - b) : 0;
    hg_err_set(err, HG_EINVAL, "body: malformed JSON near offset %zu", off);
    return NULL;
  }
  /* cJSON stops after the first value; anything but whitespace after it is malformed. */
  size_t at = (size_t)(end - b);
  while (at < n && (b[at] == ' ' || b[at] == '\n' || b[at] == '\r' || b[at] == '\t')) at++;
  if (at != n) {
    cJSON_Delete(doc);
    hg_err_set(err, HG_EINVAL, "body: malformed JSON (extra text at offset %zu)", at);
    return NULL;
  }
  if (!cJSON_IsObject(doc)) {
    hg_err_set(err, HG_EINVAL, "body: expected a JSON object, got %s", hg_fields_type_name(doc));
    cJSON_Delete(doc);
    return NULL;
  }
  /* cJSON reads some invalid JSON and cuts strings at \u0000: a value stored differently from
   * what was sent (a secret cut short) is refused instead. Numbers beyond a double are left to
   * the field checks, whose messages name the field. */
  if (hg_jsoncheck(b, n, NULL, err)) {
    hg_err_prefix(err, "body");
    cJSON_Delete(doc);
    return NULL;
  }
  return doc;
}
