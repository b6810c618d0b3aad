/* YAML to JSON through libyaml's event parser: an explicit stack of open collections, each
 * attached to its parent as soon as it starts, so one cJSON_Delete frees a failed parse. */
#include "core/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/buf.h"

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct {
  char *name;
  cJSON *node; /* owned by the tree */
  int complete;
} anchor;

typedef struct {
  cJSON *node;
  int is_map;
  char *key; /* a map's key waiting for its value */
  size_t own_index; /* the anchor naming this collection, completed at its end */
  int has_anchor;
} frame;

typedef struct {
  const char *name;
  hg_err *err;
  cJSON *root;
  frame stack[HG_YAML_MAX_DEPTH];
  int depth;
  anchor *anchors;
  size_t n_anchors, cap_anchors;
  size_t alias_nodes;
  int documents;
  int failed;
  int code;
} state;

static int fail_at(state *s, int code, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(state *s, int code, yaml_mark_t mark, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  s->failed = 1;
  s->code = code;
  return hg_err_set(s->err, code, "%s:%zu:%zu: %s", s->name, mark.line + 1, mark.column + 1, msg);
}

/* ---- scalars ---- */

static int all_digits(const char *p, const char *digits) {
  if (!*p) return 0;
  for (; *p; p++)
    if (!strchr(digits, *p)) return 0;
  return 1;
}

static int is_null_text(const char *v) {
  return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static int bool_text(const char *v) {
  if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) return 1;
  if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) return 0;
  return -1;
}

/* Core-schema integer: [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+. */
static int int_text(const char *v, double *out) {
  if (v[0] == '0' && v[1] == 'o' && all_digits(v + 2, "01234567")) {
    *out = (double)strtoull(v + 2, NULL, 8);
    return 1;
  }
  if (v[0] == '0' && v[1] == 'x' && all_digits(v + 2, "0123456789abcdefABCDEF")) {
    *out = (double)strtoull(v + 2, NULL, 16);
    return 1;
  }
  const char *p = (*v == '-' || *v == '+') ? v + 1 : v;
  if (!all_digits(p, "0123456789")) return 0;
  *out = strtod(v, NULL);
  return 1;
}

/* Core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, .inf, .nan. */
static int float_text(const char *v, double *out) {
  const char *p = (*v == '-' || *v == '+') ? v + 1 : v;
  if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
    *out = *v == '-' ? -INFINITY : INFINITY;
    return 1;
  }
  if (!strcmp(v, ".nan") || !strcmp(v, ".NaN") || !strcmp(v, ".NAN")) {
    *out = NAN;
    return 1;
  }
  const char *q = p;
  int digits = 0;
  while (*q >= '0' && *q <= '9') q++, digits++;
  if (*q == '.') {
    q++;
    int frac = 0;
    while (*q >= '0' && *q <= '9') q++, frac++;
    if (!digits && !frac) return 0;
    if (!digits && q == p + 1) return 0;
  } else if (!digits) {
    return 0;
  }
  if (*q == 'e' || *q == 'E') {
    q++;
    if (*q == '-' || *q == '+') q++;
    if (!(*q >= '0' && *q <= '9')) return 0;
    while (*q >= '0' && *q <= '9') q++;
  }
  if (*q) return 0;
  *out = strtod(v, NULL);
  return 1;
}

static cJSON *scalar_node(state *s, const yaml_event_t *ev) {
  const char *v = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  yaml_mark_t at = ev->start_mark;
  if (strlen(v) != len) {
    fail_at(s, HG_EINVAL, at, "scalar holds a NUL character");
    return NULL;
  }
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  double d;
  if (!tag) {
    if (!plain) return cJSON_CreateString(v);
    if (is_null_text(v)) return cJSON_CreateNull();
    int b = bool_text(v);
    if (b >= 0) return cJSON_CreateBool(b);
    if (int_text(v, &d) || float_text(v, &d)) return cJSON_CreateNumber(d);
    return cJSON_CreateString(v);
  }
  if (!strcmp(tag, "!") || !strcmp(tag, TAG_PREFIX "str")) return cJSON_CreateString(v);
  if (!strcmp(tag, TAG_PREFIX "null")) {
    if (is_null_text(v)) return cJSON_CreateNull();
  } else if (!strcmp(tag, TAG_PREFIX "bool")) {
    int b = bool_text(v);
    if (b >= 0) return cJSON_CreateBool(b);
  } else if (!strcmp(tag, TAG_PREFIX "int")) {
    if (int_text(v, &d)) return cJSON_CreateNumber(d);
  } else if (!strcmp(tag, TAG_PREFIX "float")) {
    if (int_text(v, &d) || float_text(v, &d)) return cJSON_CreateNumber(d);
  } else {
    fail_at(s, HG_EINVAL, at, "unsupported tag '%s'", tag);
    return NULL;
  }
  fail_at(s, HG_EINVAL, at, "'%s' is not a valid %s", v, tag + strlen(TAG_PREFIX));
  return NULL;
}

/* ---- anchors ---- */

static anchor *define_anchor(state *s, const char *name, cJSON *node, int complete,
                             yaml_mark_t at) {
  if (s->n_anchors == s->cap_anchors) {
    size_t cap = s->cap_anchors ? s->cap_anchors * 2 : 16;
    anchor *a = realloc(s->anchors, cap * sizeof *a);
    if (!a) {
      fail_at(s, HG_ENOMEM, at, "out of memory");
      return NULL;
    }
    s->anchors = a;
    s->cap_anchors = cap;
  }
  anchor *a = &s->anchors[s->n_anchors];
  /* complete: 0 while the anchored collection is still open, 1 once closed (the node belongs
   * to the tree), 2 for a scalar (the table owns a copy, as keys are consumed as text). */
  a->name = strdup(name);
  if (!a->name) {
    fail_at(s, HG_ENOMEM, at, "out of memory");
    return NULL;
  }
  a->node = node;
  a->complete = complete;
  s->n_anchors++;
  return a;
}

static size_t count_nodes(const cJSON *n) {
  size_t c = 1;
  for (const cJSON *ch = n->child; ch; ch = ch->next) c += count_nodes(ch);
  return c;
}

static cJSON *resolve_alias(state *s, const yaml_event_t *ev) {
  const char *name = (const char *)ev->data.alias.anchor;
  /* The latest definition wins: an anchor may be redefined further down. */
  for (size_t i = s->n_anchors; i-- > 0;) {
    anchor *a = &s->anchors[i];
    if (strcmp(a->name, name) != 0) continue;
    if (!a->complete) {
      fail_at(s, HG_EINVAL, ev->start_mark, "alias *%s refers to a node that contains it", name);
      return NULL;
    }
    size_t n = count_nodes(a->node);
    if (n > HG_YAML_MAX_ALIAS_NODES || s->alias_nodes + n > HG_YAML_MAX_ALIAS_NODES) {
      fail_at(s, HG_ETOOBIG, ev->start_mark,
              "aliases expand to more than %d nodes (an alias bomb?)", HG_YAML_MAX_ALIAS_NODES);
      return NULL;
    }
    s->alias_nodes += n;
    cJSON *copy = cJSON_Duplicate(a->node, 1);
    if (!copy) fail_at(s, HG_ENOMEM, ev->start_mark, "out of memory");
    return copy;
  }
  fail_at(s, HG_EINVAL, ev->start_mark, "unknown anchor '%s'", name);
  return NULL;
}

/* ---- building ---- */

/* Places a finished value (scalar, alias copy) or a just-started collection where it
 * belongs. Takes ownership of node. */
static int place(state *s, cJSON *node, const yaml_event_t *ev) {
  if (s->depth == 0) {
    if (s->root) {
      cJSON_Delete(node);
      return fail_at(s, HG_EINVAL, ev->start_mark, "unexpected second root node");
    }
    s->root = node;
    return 0;
  }
  frame *f = &s->stack[s->depth - 1];
  if (!f->is_map) {
    cJSON_AddItemToArray(f->node, node);
    return 0;
  }
  if (!f->key) {
    /* This node is a key. */
    if (!cJSON_IsString(node)) {
      int is_scalar = !cJSON_IsArray(node) && !cJSON_IsObject(node);
      if (!is_scalar) {
        cJSON_Delete(node);
        return fail_at(s, HG_EINVAL, ev->start_mark, "a mapping key must be a scalar");
      }
    }
    const char *text;
    char num[64];
    if (cJSON_IsString(node)) {
      text = node->valuestring;
    } else if (ev->type == YAML_SCALAR_EVENT) {
      text = (const char *)ev->data.scalar.value;
    } else if (cJSON_IsNull(node)) {
      text = "null";
    } else if (cJSON_IsBool(node)) {
      text = cJSON_IsTrue(node) ? "true" : "false";
    } else {
      snprintf(num, sizeof num, "%.17g", node->valuedouble);
      text = num;
    }
    if (cJSON_GetObjectItemCaseSensitive(f->node, text)) {
      int rc = fail_at(s, HG_EINVAL, ev->start_mark, "duplicate key '%s'", text);
      cJSON_Delete(node);
      return rc;
    }
    f->key = strdup(text);
    cJSON_Delete(node);
    if (!f->key) return fail_at(s, HG_ENOMEM, ev->start_mark, "out of memory");
    return 0;
  }
  cJSON_AddItemToObject(f->node, f->key, node);
  free(f->key);
  f->key = NULL;
  return 0;
}

static int start_collection(state *s, const yaml_event_t *ev, int is_map) {
  const char *tag = (const char *)(is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag);
  const char *anchor_name =
      (const char *)(is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
  if (tag && strcmp(tag, "!") != 0 && strcmp(tag, is_map ? TAG_PREFIX "map" : TAG_PREFIX "seq") != 0)
    return fail_at(s, HG_EINVAL, ev->start_mark, "unsupported tag '%s'", tag);
  if (s->depth == HG_YAML_MAX_DEPTH)
    return fail_at(s, HG_ETOOBIG, ev->start_mark, "nested deeper than %d levels", HG_YAML_MAX_DEPTH);
  if (s->depth > 0 && s->stack[s->depth - 1].is_map && !s->stack[s->depth - 1].key)
    return fail_at(s, HG_EINVAL, ev->start_mark, "a mapping key must be a scalar");
  cJSON *node = is_map ? cJSON_CreateObject() : cJSON_CreateArray();
  if (!node) return fail_at(s, HG_ENOMEM, ev->start_mark, "out of memory");
  int rc = place(s, node, ev);
  if (rc) return rc;
  frame *f = &s->stack[s->depth++];
  memset(f, 0, sizeof *f);
  f->node = node;
  f->is_map = is_map;
  if (anchor_name) {
    if (!define_anchor(s, anchor_name, node, 0, ev->start_mark)) return s->code;
    f->has_anchor = 1;
    f->own_index = s->n_anchors - 1;
  }
  return 0;
}

static void end_collection(state *s) {
  frame *f = &s->stack[--s->depth];
  if (f->has_anchor) s->anchors[f->own_index].complete = 1;
  free(f->key);
  f->key = NULL;
}

static int handle(state *s, const yaml_event_t *ev) {
  switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++s->documents > 1)
        return fail_at(s, HG_EINVAL, ev->start_mark,
                       "a second document: only one YAML document is allowed here");
      return 0;
    case YAML_SCALAR_EVENT: {
      cJSON *node = scalar_node(s, ev);
      if (!node) return s->failed ? s->code : fail_at(s, HG_ENOMEM, ev->start_mark, "out of memory");
      const char *a = (const char *)ev->data.scalar.anchor;
      /* Anchor the value before placing it: once placed, a key's node is freed. */
      if (a && !define_anchor(s, a, node, 1, ev->start_mark)) {
        cJSON_Delete(node);
        return s->code;
      }
      if (a) {
        /* The anchor keeps its own copy: keys are consumed as text. */
        cJSON *keep = cJSON_Duplicate(node, 1);
        if (!keep) {
          cJSON_Delete(node);
          return fail_at(s, HG_ENOMEM, ev->start_mark, "out of memory");
        }
        s->anchors[s->n_anchors - 1].node = keep;
        s->anchors[s->n_anchors - 1].complete = 2; /* owned by the anchor table */
      }
      return place(s, node, ev);
    }
    case YAML_ALIAS_EVENT: {
      cJSON *node = resolve_alias(s, ev);
      if (!node) return s->code;
      return place(s, node, ev);
    }
    case YAML_SEQUENCE_START_EVENT:
      return start_collection(s, ev, 0);
    case YAML_MAPPING_START_EVENT:
      return start_collection(s, ev, 1);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      end_collection(s);
      return 0;
    default:
      return 0;
  }
}

static void free_state(state *s) {
  while (s->depth > 0) {
    frame *f = &s->stack[--s->depth];
    free(f->key);
  }
  for (size_t i = 0; i < s->n_anchors; i++) {
    free(s->anchors[i].name);
    if (s->anchors[i].complete == 2) cJSON_Delete(s->anchors[i].node);
  }
  free(s->anchors);
}

int hg_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, hg_err *err) {
  *out = NULL;
  state *s = calloc(1, sizeof *s);
  if (!s) return hg_err_set(err, HG_ENOMEM, "out of memory");
  s->name = name ? name : "<yaml>";
  s->err = err;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    free(s);
    return hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = 0;
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      const char *problem = parser.problem ? parser.problem : "invalid YAML";
      if (parser.error == YAML_MEMORY_ERROR) {
        rc = hg_err_set(err, HG_ENOMEM, "%s: out of memory", s->name);
      } else if (parser.context) {
        rc = fail_at(s, HG_EINVAL, parser.problem_mark, "%s (%s at line %zu)", problem,
                     parser.context, parser.context_mark.line + 1);
      } else {
        rc = fail_at(s, HG_EINVAL, parser.problem_mark, "%s", problem);
      }
      break;
    }
    int done = ev.type == YAML_STREAM_END_EVENT;
    rc = handle(s, &ev);
    yaml_event_delete(&ev);
    if (rc || done) break;
  }
  yaml_parser_delete(&parser);
  if (rc) {
    cJSON_Delete(s->root);
  } else {
    *out = s->root ? s->root : cJSON_CreateNull();
    if (!*out) rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  free_state(s);
  free(s);
  return rc;
}

int hg_yaml_parse_file(const char *path, cJSON **out, hg_err *err) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f)
    return hg_err_set(err, errno == ENOENT ? HG_ENOENT : HG_EIO, "cannot read %s: %s", path,
                      strerror(errno));
  hg_buf b = HG_BUF_INIT;
  char chunk[65536];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    if (hg_buf_append(&b, chunk, n)) {
      rc = hg_err_set(err, HG_ENOMEM, "cannot read %s: out of memory", path);
      break;
    }
  }
  if (!rc && ferror(f)) rc = hg_err_set(err, HG_EIO, "cannot read %s: %s", path, strerror(errno));
  fclose(f);
  if (!rc) rc = hg_yaml_parse(b.data ? b.data : "", b.len, path, out, err);
  hg_buf_free(&b);
  return rc;
}
