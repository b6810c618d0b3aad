/* Run outputs: set/append at a JS path, all-or-nothing, keeping member order. */
#include "pipeline/outputs.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"

int hg_outputs_op_from_name(const char *name, hg_outputs_op *op) {
  if (name && strcmp(name, "set") == 0) {
    *op = HG_OUTPUTS_SET;
    return 0;
  }
  if (name && strcmp(name, "append") == 0) {
    *op = HG_OUTPUTS_APPEND;
    return 0;
  }
  return HG_EINVAL;
}

const char *hg_outputs_op_name(hg_outputs_op op) {
  return op == HG_OUTPUTS_APPEND ? "append" : "set";
}

static bool nullish(const cJSON *node) {
  return !node || cJSON_IsNull(node);
}

static const char *type_name(const cJSON *node) {
  if (cJSON_IsObject(node)) return "an object";
  if (cJSON_IsArray(node)) return "an array";
  if (cJSON_IsString(node)) return "a string";
  if (cJSON_IsNumber(node)) return "a number";
  if (cJSON_IsBool(node)) return "a boolean";
  return "null";
}

/* The canonical text of the first n segments, cut at a character boundary so that a message
 * about a long path stays short and valid UTF-8. */
static const char *name_of(const hg_jspath *path, size_t n, char *out, size_t outsz) {
  hg_buf b = HG_BUF_INIT;
  if (hg_jspath_describe(path, n, &b)) {
    hg_buf_free(&b);
    snprintf(out, outsz, "(path)");
    return out;
  }
  size_t len = b.len;
  if (len >= outsz) {
    len = outsz - 4;
    while (len > 0 && ((unsigned char)b.data[len] & 0xc0) == 0x80) len--;
    snprintf(out, outsz, "%.*s...", (int)len, b.data);
  } else {
    memcpy(out, b.data, len + 1);
  }
  hg_buf_free(&b);
  return out;
}

/* "cannot set a.b[0]: <detail>"; the detail names the prefix where the walk stopped. */
static int fail(hg_err *err, hg_outputs_op op, const hg_jspath *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(hg_err *err, hg_outputs_op op, const hg_jspath *path, const char *fmt, ...) {
  char whole[160], detail[320];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  return hg_err_set(err, HG_EINVAL, "cannot %s %s: %s", op == HG_OUTPUTS_SET ? "set" : "append to",
                    name_of(path, path->n, whole, sizeof whole), detail);
}

/* The object keys segs[from..n) wrapped around inner: {k1: {k2: inner}}. Consumes inner. */
static cJSON *wrap(const hg_jspath *path, size_t from, cJSON *inner) {
  for (size_t k = path->n; inner && k-- > from;) {
    cJSON *obj = cJSON_CreateObject();
    if (!obj || !cJSON_AddItemToObject(obj, path->segs[k].key, inner)) {
      cJSON_Delete(obj);
      cJSON_Delete(inner);
      return NULL;
    }
    inner = obj;
  }
  return inner;
}

int hg_outputs_apply(cJSON **root, hg_outputs_op op, const hg_jspath *path, const cJSON *value,
                     hg_err *err) {
  if (!value) return hg_err_set(err, HG_EINVAL, "output op without a value");

  /* First walk without touching anything: every check happens before the one mutation. */
  cJSON *parent = NULL, *node = *root;
  char where[160];
  size_t d = 0;
  for (; d < path->n && !nullish(node); d++) {
    const hg_jspath_seg *seg = &path->segs[d];
    cJSON *child;
    if (seg->kind == HG_JSPATH_KEY) {
      if (!cJSON_IsObject(node))
        return fail(err, op, path, "%s is %s, not an object",
                    name_of(path, d, where, sizeof where), type_name(node));
      child = cJSON_GetObjectItemCaseSensitive(node, seg->key);
    } else {
      if (!cJSON_IsArray(node))
        return fail(err, op, path, "%s is %s, not an array", name_of(path, d, where, sizeof where),
                    type_name(node));
      int size = cJSON_GetArraySize(node);
      if (seg->index >= (size_t)size)
        return fail(err, op, path, "index %zu is out of range (%s has %d element%s)", seg->index,
                    name_of(path, d, where, sizeof where), size, size == 1 ? "" : "s");
      child = cJSON_GetArrayItem(node, (int)seg->index);
    }
    parent = node;
    node = child;
  }

  if (d == path->n && op == HG_OUTPUTS_APPEND && !nullish(node)) {
    if (!cJSON_IsArray(node))
      return fail(err, op, path, "%s is %s, not an array", name_of(path, d, where, sizeof where),
                  type_name(node));
    cJSON *copy = cJSON_Duplicate(value, 1);
    if (!copy) return hg_err_set(err, HG_ENOMEM, "out of memory");
    cJSON_AddItemToArray(node, copy);
    return 0;
  }

  /* Below a null or missing value only objects can be created. */
  for (size_t k = d; k < path->n; k++)
    if (path->segs[k].kind == HG_JSPATH_INDEX)
      return fail(err, op, path, "%s is %s, and an array index must exist",
                  name_of(path, k, where, sizeof where),
                  k == d && (node || d == 0) ? "null" : "missing");

  cJSON *inner = cJSON_Duplicate(value, 1);
  if (inner && inner->string) {
    /* A value taken from an object (an event's "value") keeps its member name in the copy;
     * the name given below would leak it. */
    cJSON_free(inner->string);
    inner->string = NULL;
  }
  if (inner && op == HG_OUTPUTS_APPEND) {
    cJSON *arr = cJSON_CreateArray();
    if (arr) cJSON_AddItemToArray(arr, inner);
    else cJSON_Delete(inner);
    inner = arr;
  }
  cJSON *repl = wrap(path, d, inner);
  if (!repl) return hg_err_set(err, HG_ENOMEM, "out of memory");

  if (d == 0) {
    cJSON_Delete(*root);
    *root = repl;
    return 0;
  }
  if (node) {
    if (node->string) {
      /* ReplaceItemViaPointer keeps the position but not the name. */
      size_t n = strlen(node->string) + 1;
      repl->string = cJSON_malloc(n);
      if (!repl->string) {
        cJSON_Delete(repl);
        return hg_err_set(err, HG_ENOMEM, "out of memory");
      }
      memcpy(repl->string, node->string, n);
    }
    cJSON_ReplaceItemViaPointer(parent, node, repl);
    return 0;
  }
  if (!cJSON_AddItemToObject(parent, path->segs[d - 1].key, repl)) {
    cJSON_Delete(repl);
    return hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  return 0;
}

int hg_outputs_apply_text(cJSON **root, const char *op, const char *path, const cJSON *value,
                          hg_err *err) {
  hg_outputs_op o;
  if (hg_outputs_op_from_name(op, &o))
    return hg_err_set(err, HG_EINVAL, "unknown output op \"%.32s\" (expected set or append)",
                      op ? op : "");
  hg_jspath p = HG_JSPATH_INIT;
  int rc = hg_jspath_parse(&p, path ? path : "", path ? strlen(path) : 0, err);
  if (rc) return rc;
  rc = hg_outputs_apply(root, o, &p, value, err);
  hg_jspath_free(&p);
  return rc;
}

int hg_outputs_legacy(cJSON **root, const char *name, const cJSON *value, hg_err *err) {
  if (!name || !*name) name = HG_OUTPUTS_LEGACY_NAME;
  hg_jspath p = HG_JSPATH_INIT;
  if (hg_jspath_push_key(&p, name, strlen(name)))
    return hg_err_set(err, HG_ENOMEM, "out of memory");
  int rc = hg_outputs_apply(root, HG_OUTPUTS_APPEND, &p, value, err);
  hg_jspath_free(&p);
  return rc;
}
