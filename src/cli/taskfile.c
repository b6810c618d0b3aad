/* Reading a task definition file (*.task.yaml) into JSON for the hub. */
#include "cli/taskfile.h"

#include "core/yaml.h"

static const char *kind_of(const cJSON *v) {
  if (cJSON_IsNull(v)) return "nothing (the file is empty)";
  if (cJSON_IsArray(v)) return "a list";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsBool(v)) return "a boolean";
  return "something else";
}

int hg_taskfile_load(const char *path, cJSON **out, hg_err *err) {
  *out = NULL;
  cJSON *doc = NULL;
  int rc = hg_yaml_parse_file(path, &doc, err);
  if (rc < 0) return rc;
  if (!cJSON_IsObject(doc)) {
    rc = hg_err_set(err, HG_EINVAL, "%s: a task file holds one mapping (slug: ..., command: ...), not %s",
                    path, kind_of(doc));
    cJSON_Delete(doc);
    return rc;
  }
  *out = doc;
  return 0;
}
