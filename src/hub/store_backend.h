/* What a store backend provides: the table of operations behind store.h. Only store.c and the
 * backends include this. */
#pragma once

#include "hub/store.h"

typedef struct hg_store_ops {
  const char *name;
  void (*close)(hg_store *s);
  int (*schema_version)(hg_store *s);
  int (*begin)(hg_store *s, hg_err *err);
  int (*begin_read)(hg_store *s, hg_err *err);
  int (*commit)(hg_store *s, hg_err *err);
  void (*rollback)(hg_store *s);
  int (*meta_get)(hg_store *s, const char *name, hg_buf *value, hg_err *err);
  int (*meta_set)(hg_store *s, const char *name, const void *value, size_t len, hg_err *err);
  int (*key_insert)(hg_store *s, const hg_store_key *k, hg_err *err);
  int (*key_get)(hg_store *s, const char *id, hg_store_key *out, hg_err *err);
  int (*key_list)(hg_store *s, hg_store_key **out, size_t *n, hg_err *err);
  int (*key_revoke)(hg_store *s, const char *id, int64_t at_ms, hg_err *err);
  int (*key_touch)(hg_store *s, const char *id, int64_t at_ms, hg_err *err);
  int (*key_count_active)(hg_store *s, const char *role, int64_t *n, hg_err *err);
  int (*task_insert)(hg_store *s, const hg_store_task *t, hg_err *err);
  int (*task_get)(hg_store *s, const char *slug, int64_t revision, hg_store_task *out,
                  hg_err *err);
  int (*task_list)(hg_store *s, hg_store_task **out, size_t *n, hg_err *err);
  int (*agent_put)(hg_store *s, const hg_store_agent *a, hg_err *err);
  int (*agent_get)(hg_store *s, const char *id, hg_store_agent *out, hg_err *err);
  int (*agent_by_session)(hg_store *s, const uint8_t *hash, hg_store_agent *out, hg_err *err);
  int (*agent_list_sessions)(hg_store *s, const char *key_id, hg_store_agent **out, size_t *n,
                             hg_err *err);
  int (*agent_end_session)(hg_store *s, const char *id, hg_err *err);
  int (*run_insert)(hg_store *s, hg_store_run *r, hg_err *err);
  int (*run_get)(hg_store *s, const char *id, hg_store_run *out, hg_err *err);
  int (*run_by_token)(hg_store *s, const uint8_t *hash, hg_store_run *out, hg_err *err);
  int (*run_update)(hg_store *s, const hg_store_run *r, hg_err *err);
  int (*run_list)(hg_store *s, const hg_store_run_query *q, hg_store_run **out, size_t *n,
                  hg_err *err);
  int (*run_count_by_status)(hg_store *s, int64_t *counts, hg_err *err);
  int (*run_extend_leases)(hg_store *s, int64_t until_ms, hg_err *err);
  int (*event_append)(hg_store *s, int64_t run_seqno, const hg_store_chunk *chunk, hg_err *err);
  int (*event_read)(hg_store *s, int64_t run_seqno, int64_t after, size_t limit, size_t max_bytes,
                    hg_store_chunk **out, size_t *n, hg_err *err);
  int (*config_put)(hg_store *s, const hg_store_config *c, hg_err *err);
  int (*config_get)(hg_store *s, const char *name, hg_store_config *out, hg_err *err);
  int (*config_list)(hg_store *s, hg_store_config **out, size_t *n, hg_err *err);
  int (*config_delete)(hg_store *s, const char *name, hg_err *err);
} hg_store_ops;

/* Every backend's store begins with this. */
struct hg_store {
  const hg_store_ops *ops;
};

int hg_store_sqlite_open(const char *path, const hg_store_options *opts, hg_store **out,
                         hg_err *err);
