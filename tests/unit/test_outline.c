/* Output/mask/chunk line parser: every form, its airplane_ alias, errors, chunk reassembly. */
#include <cjson/cJSON.h>
#include <string.h>

#include "check.h"
#include "pipeline/outline.h"

static hg_outline *ol;
static hg_outline_result r;

static void fresh(const hg_outline_config *cfg) {
  hg_outline_free(ol);
  CHECK_EQ_INT(hg_outline_new(&ol, cfg), 0);
}

static int feed(const char *line) {
  return hg_outline_line(ol, line, strlen(line), false, &r);
}

static char *value_json(void) {
  return r.value ? cJSON_PrintUnformatted(r.value) : strdup("(none)");
}

/* line must be an output op with this op, canonical path and value; it is logged as is. */
static void output(const char *line, hg_outputs_op op, const char *path, const char *value) {
  CHECK_EQ_INT(feed(line), 0);
  if (r.kind != HG_OUTLINE_OUTPUT) fprintf(stderr, "  <%s>: kind %d (%s)\n", line, r.kind, r.err.msg);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK(r.log_line);
  CHECK_EQ_INT(r.op, op);
  CHECK_EQ_STR(r.path_text.data, path);
  char *v = value_json();
  CHECK_EQ_STR(v, value);
  free(v);
  CHECK(r.text == line);
}

static void plain(const char *line) {
  CHECK_EQ_INT(feed(line), 0);
  if (r.kind != HG_OUTLINE_LOG) fprintf(stderr, "  <%s>: kind %d\n", line, r.kind);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK(r.log_line);
  CHECK(r.text == line && r.text_len == strlen(line));
}

static void fails(const char *line, bool logged, const char *msg) {
  CHECK_EQ_INT(feed(line), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_ERROR);
  CHECK_EQ_INT(r.log_line, logged);
  if (!strstr(r.err.msg, msg)) fprintf(stderr, "  <%s>: \"%s\" lacks \"%s\"\n", line, r.err.msg, msg);
  CHECK(strstr(r.err.msg, msg) != NULL);
  CHECK(r.value == NULL);
}

static void mask_is(const char *line, const char *value) {
  CHECK_EQ_INT(feed(line), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_MASK);
  CHECK(!r.log_line);
  CHECK_EQ_INT(r.mask_len, strlen(value));
  CHECK(r.mask && memcmp(r.mask, value, r.mask_len) == 0);
}

static void consumed(const char *line) {
  CHECK_EQ_INT(feed(line), 0);
  if (r.kind != HG_OUTLINE_CHUNK) fprintf(stderr, "  <%s>: kind %d (%s)\n", line, r.kind, r.err.msg);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_CHUNK);
  CHECK(!r.log_line);
}

static void set_and_append(void) {
  fresh(NULL);
  output("hangar_output_set:a.b {\"x\":1}", HG_OUTPUTS_SET, "a.b", "{\"x\":1}");
  output("hangar_output_append:list 3", HG_OUTPUTS_APPEND, "list", "3");
  output("hangar_output_set:[\"a b\"][0] \"v\"", HG_OUTPUTS_SET, "[\"a b\"][0]", "\"v\"");
  /* the path is sent in canonical form */
  output("hangar_output_set:['k'][ 2 ] null", HG_OUTPUTS_SET, "k[2]", "null");
  /* no PATH, or an empty one, is the root */
  output("hangar_output_set {\"a\":1}", HG_OUTPUTS_SET, "", "{\"a\":1}");
  output("hangar_output_append: [1]", HG_OUTPUTS_APPEND, "", "[1]");
  /* whitespace around the JSON does not matter; JSON keeps its member order */
  output("hangar_output_set:x \t {\"b\":1,\"a\":2}  ", HG_OUTPUTS_SET, "x", "{\"b\":1,\"a\":2}");
  output("hangar_output_set:x\t\"tab\"", HG_OUTPUTS_SET, "x", "\"tab\"");
  CHECK_EQ_INT(r.path.n, 1);
  CHECK_EQ_STR(r.path.segs[0].key, "x");
}

static void airplane_aliases(void) {
  fresh(NULL);
  output("airplane_output_set:a 1", HG_OUTPUTS_SET, "a", "1");
  output("airplane_output_append:l \"x\"", HG_OUTPUTS_APPEND, "l", "\"x\"");
  output("airplane_output hello", HG_OUTPUTS_APPEND, "output", "\"hello\"");
  output("airplane_output:n [1]", HG_OUTPUTS_APPEND, "n", "[1]");
  mask_is("airplane_mask s3cr3t-value", "s3cr3t-value");
  consumed("airplane_chunk:k hangar_output");
  consumed("hangar_chunk:k _set:z 1");
  CHECK_EQ_INT(feed("airplane_chunk_end:k"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK_EQ_STR(r.path_text.data, "z");
  fails("airplane_output_set:a {", true, "airplane_output_set: invalid JSON value");
}

static void output_errors(void) {
  fresh(NULL);
  /* no space between PATH and JSON */
  fails("hangar_output_set:a{\"x\":1}", true,
        "hangar_output_set: invalid path at offset 1: expected '.' or '[', found '{'");
  fails("hangar_output_append:a.b[0]1", true, "invalid path at offset 6");
  fails("hangar_output_set:a[ 1", true, "hangar_output_set: invalid path at offset 4: expected ']'");
  fails("hangar_output_set:a..b 1", true, "invalid path at offset 2: expected a member name");
  fails("hangar_output_set:a", true, "hangar_output_set: missing JSON value");
  fails("hangar_output_append  ", true, "hangar_output_append: missing JSON value");
  fails("hangar_output_set", true, "missing JSON value");
  fails("hangar_output_set:a {", true, "hangar_output_set: invalid JSON value");
  fails("hangar_output_set:a hello", true, "invalid JSON value (error at offset 0 of the value)");
  fails("hangar_output_set:a 1 2", true, "invalid JSON value (error at offset 2 of the value)");
  fails("hangar_output_append:a {\"k\":1}}", true, "invalid JSON value");
  /* an escaped backslash before u0000 is text, not the escape */
  output("hangar_output_set:a \"x\\\\u0000y\"", HG_OUTPUTS_SET, "a", "\"x\\\\u0000y\"");
  /* JSON that cJSON alone would take but RFC 8259 refuses; a value must never be stored other
   * than it was printed (01 as 1, 1e999 as null, a string cut at \u0000) */
  fails("hangar_output_set:a 01", true, "invalid JSON value (a number with a leading zero at offset 0)");
  fails("hangar_output_set:a [1.]", true, "invalid JSON value (a number without digits after its point");
  fails("hangar_output_set:a \"x\ty\"", true, "invalid JSON value (a raw control character (0x09)");
  fails("hangar_output_set:a \"x\\u0000y\"", true, "invalid JSON value (\\u0000 inside a string");
  fails("hangar_output_append:a 1e999", true, "invalid JSON value (a number too large for a double)");
  /* an error result carries no op */
  CHECK_EQ_INT(r.path.n, 0);
  CHECK(r.text != NULL);
}

static void legacy_form(void) {
  fresh(NULL);
  output("hangar_output [1, 2]", HG_OUTPUTS_APPEND, "output", "[1,2]");
  output("hangar_output:n {\"a\":1}", HG_OUTPUTS_APPEND, "n", "{\"a\":1}");
  /* not JSON: the trimmed string */
  output("hangar_output  hello there \t", HG_OUTPUTS_APPEND, "output", "\"hello there\"");
  output("hangar_output:n {oops", HG_OUTPUTS_APPEND, "n", "\"{oops\"");
  output("hangar_output \"quoted\"", HG_OUTPUTS_APPEND, "output", "\"quoted\"");
  output("hangar_output", HG_OUTPUTS_APPEND, "output", "\"\"");
  /* what is not strictly JSON is text, as printed */
  output("hangar_output 0042", HG_OUTPUTS_APPEND, "output", "\"0042\"");
  output("hangar_output 1e999", HG_OUTPUTS_APPEND, "output", "\"1e999\"");
  /* NAME is a key taken verbatim, so the event's path quotes it */
  output("hangar_output:a.b[0] 1", HG_OUTPUTS_APPEND, "[\"a.b[0]\"]", "1");
  CHECK_EQ_INT(r.path.n, 1);
  CHECK_EQ_STR(r.path.segs[0].key, "a.b[0]");
  fails("hangar_output: 1", true, "hangar_output: missing NAME after ':'");
}

static void ordinary_lines(void) {
  fresh(NULL);
  plain("");
  plain("hello world");
  plain("hangar_outputs are nice");
  plain("hangar_output_settings 1");
  plain("hangar_output_set{\"a\":1}");
  plain("hangar_maskfoo");
  plain("hangar_mask:foo123456");
  plain("hangar_unknown:x 1");
  plain("hangar_");
  plain(" hangar_output_set:a 1");
  plain("Hangar_output_set:a 1");
  plain("airplane_outputs 1");
  plain("hangar_chunks:k data");
}

static void masks(void) {
  fresh(NULL);
  mask_is("hangar_mask foo123456", "foo123456");
  /* the rest after one space; only trailing whitespace is trimmed */
  mask_is("hangar_mask  foo 1 \t", " foo 1");
  mask_is("hangar_mask\tpa ss\r", "pa ss");
  fails("hangar_mask", false, "hangar_mask: no value given, nothing is masked");
  fails("hangar_mask    \t", false, "no value given");
  fails("airplane_mask ", false, "airplane_mask: no value given");
}

static void partial_lines(void) {
  fresh(NULL);
  const char *lines[] = {"hangar_output_set:a 1", "hangar_mask secret-value", "hangar_chunk:k x",
                         "hangar_chunk_end:k"};
  for (size_t i = 0; i < 4; i++) {
    CHECK_EQ_INT(hg_outline_line(ol, lines[i], strlen(lines[i]), true, &r), 0);
    CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
    CHECK(r.log_line);
    CHECK(r.text == lines[i]);
  }
  CHECK_EQ_INT(hg_outline_pending(ol), 0);
}

static void chunk_reassembly(void) {
  fresh(NULL);
  /* two keys interleaved; data is kept verbatim, spaces included */
  consumed("hangar_chunk:a hangar_output_set:big {\"t\":");
  consumed("hangar_chunk:b plain ");
  consumed("hangar_chunk:a \"x ");
  consumed("hangar_chunk:b text");
  consumed("hangar_chunk:a y\"}");
  CHECK(hg_outline_pending(ol) > 0);
  CHECK_EQ_INT(feed("hangar_chunk_end:b"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK(r.log_line);
  CHECK_EQ_INT(r.text_len, 10);
  CHECK(memcmp(r.text, "plain text", 10) == 0);
  CHECK_EQ_INT(feed("hangar_chunk_end:a  "), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK_EQ_STR(r.path_text.data, "big");
  char *v = value_json();
  CHECK_EQ_STR(v, "{\"t\":\"x y\"}");
  free(v);
  /* the reassembled line is what gets logged */
  CHECK_EQ_STR(r.text, "hangar_output_set:big {\"t\":\"x y\"}");
  CHECK_EQ_INT(hg_outline_pending(ol), 0);

  /* a key may be reused once ended; an empty chunk is allowed */
  consumed("hangar_chunk:a");
  consumed("hangar_chunk:a hangar_mask  pass");
  consumed("hangar_chunk:a word   ");
  CHECK_EQ_INT(feed("hangar_chunk_end:a"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_MASK);
  CHECK(!r.log_line);
  /* one space after the name, trailing whitespace of the whole line trimmed */
  CHECK_EQ_INT(r.mask_len, 9);
  CHECK(memcmp(r.mask, " password", 9) == 0);

  /* a reassembled line with an error is logged with its error */
  consumed("hangar_chunk:e hangar_output_set:a {");
  CHECK_EQ_INT(feed("hangar_chunk_end:e"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_ERROR);
  CHECK(r.log_line);
  CHECK_EQ_STR(r.text, "hangar_output_set:a {");
  /* only an ending with data behind it gives a line: an empty one logs an empty line */
  consumed("hangar_chunk:z");
  CHECK_EQ_INT(feed("hangar_chunk_end:z"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK_EQ_INT(r.text_len, 0);
}

static void long_reassembled_line(void) {
  fresh(NULL);
  /* 200 KiB of value in 4 KiB chunks: far longer than one event, still one output op */
  hg_buf line = HG_BUF_INIT, chunk = HG_BUF_INIT;
  hg_buf_appends(&line, "hangar_output_append:blobs \"");
  for (int i = 0; i < 200 * 1024; i++) hg_buf_appendc(&line, (char)('a' + i % 26));
  hg_buf_appends(&line, "\"");
  for (size_t off = 0; off < line.len; off += 4096) {
    hg_buf_reset(&chunk);
    size_t n = line.len - off < 4096 ? line.len - off : 4096;
    hg_buf_appends(&chunk, "hangar_chunk:blob ");
    hg_buf_append(&chunk, line.data + off, n);
    CHECK_EQ_INT(hg_outline_line(ol, chunk.data, chunk.len, false, &r), 0);
    CHECK_EQ_INT(r.kind, HG_OUTLINE_CHUNK);
  }
  CHECK_EQ_INT(feed("hangar_chunk_end:blob"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK_EQ_INT(r.text_len, line.len);
  CHECK(memcmp(r.text, line.data, line.len) == 0);
  CHECK(cJSON_IsString(r.value) && strlen(r.value->valuestring) == 200 * 1024);
  hg_buf_free(&line);
  hg_buf_free(&chunk);
}

static void chunk_errors(void) {
  fresh(NULL);
  fails("hangar_chunk_end:never", false, "hangar_chunk_end:never: no chunks were received");
  fails("hangar_chunk data", true, "hangar_chunk: missing :KEY");
  fails("hangar_chunk: data", true, "missing :KEY");
  fails("hangar_chunk_end", true, "hangar_chunk_end: missing :KEY");
  consumed("hangar_chunk:k abc");
  fails("hangar_chunk_end:k junk", true, "hangar_chunk_end:k: unexpected text after the key");
  /* the key stays open after a malformed ending */
  CHECK_EQ_INT(feed("hangar_chunk_end:k"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK_EQ_STR(r.text, "abc");
  /* a second ending finds nothing */
  fails("hangar_chunk_end:k", false, "no chunks were received");
}

static void chunk_memory_limit(void) {
  hg_outline_config cfg = {.max_chunk_bytes = 1000};
  fresh(&cfg);
  char big[401];
  memset(big, 'x', 400);
  big[400] = '\0';
  char line[512];
  snprintf(line, sizeof line, "hangar_chunk:k %s", big);
  consumed(line);
  snprintf(line, sizeof line, "hangar_chunk:other %s", big);
  consumed(line);
  size_t before = hg_outline_pending(ol);
  CHECK(before <= 1000);
  /* this one would pass the limit: one error, that key's data is dropped */
  snprintf(line, sizeof line, "hangar_chunk:k %s", big);
  fails(line, false, "hangar_chunk:k: the chunked line is larger than the limit of 1000 bytes");
  CHECK(hg_outline_pending(ol) < before);
  /* the rest of that line passes quietly, and so does its ending */
  consumed("hangar_chunk:k more");
  consumed("hangar_chunk_end:k");
  /* the other key was not harmed */
  CHECK_EQ_INT(feed("hangar_chunk_end:other"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK_EQ_INT(r.text_len, 400);
  CHECK_EQ_INT(hg_outline_pending(ol), 0);
  /* memory came back: the same key works again */
  snprintf(line, sizeof line, "hangar_chunk:k %s", big);
  consumed(line);
  CHECK_EQ_INT(feed("hangar_chunk_end:k"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_LOG);
  CHECK_EQ_INT(r.text_len, 400);
  /* many distinct keys also reach the limit */
  int refused = 0;
  for (int i = 0; i < 50; i++) {
    snprintf(line, sizeof line, "hangar_chunk:key%d x", i);
    CHECK_EQ_INT(feed(line), 0);
    if (r.kind == HG_OUTLINE_ERROR) {
      refused++;
      CHECK(strstr(r.err.msg, "too much chunk data is pending (limit 1000 bytes per run)") != NULL);
    }
  }
  CHECK(refused > 0);
  CHECK(hg_outline_pending(ol) <= 1000);
}

/* Masks "secret" wherever it appears, as the run's redactor would. */
static int redact_secret(void *ud, const char *text, size_t len, hg_buf *out) {
  int *calls = ud;
  (*calls)++;
  for (size_t i = 0; i < len;) {
    if (len - i >= 6 && memcmp(text + i, "secret", 6) == 0) {
      hg_buf_appends(out, "[REDACTED]");
      i += 6;
    } else {
      hg_buf_appendc(out, text[i++]);
    }
  }
  return 0;
}

static int redact_fails(void *ud, const char *text, size_t len, hg_buf *out) {
  return HG_EIO;
}

static void reassembled_line_is_redacted(void) {
  int calls = 0;
  hg_outline_config cfg = {.redact = redact_secret, .redact_ud = &calls};
  fresh(&cfg);
  /* a secret split across chunk lines was never whole before */
  consumed("hangar_chunk:k hangar_output_set:tok \"sec");
  consumed("hangar_chunk:k ret\"");
  CHECK_EQ_INT(calls, 0);
  CHECK_EQ_INT(feed("hangar_chunk_end:k"), 0);
  CHECK_EQ_INT(calls, 1);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK_EQ_STR(r.text, "hangar_output_set:tok \"[REDACTED]\"");
  CHECK_EQ_STR(r.value->valuestring, "[REDACTED]");

  cfg.redact = redact_fails;
  fresh(&cfg);
  consumed("hangar_chunk:k hangar_mask abcdefgh");
  CHECK_EQ_INT(feed("hangar_chunk_end:k"), HG_EIO);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_ERROR);
  CHECK(!r.log_line);
}

static void nested_chunks(void) {
  fresh(NULL);
  /* a reassembled line that is itself a chunk form is handled like one */
  consumed("hangar_chunk:inner hangar_output_append:n 42");
  consumed("hangar_chunk:outer hangar_chunk_end:inner");
  CHECK_EQ_INT(feed("hangar_chunk_end:outer"), 0);
  CHECK_EQ_INT(r.kind, HG_OUTLINE_OUTPUT);
  CHECK_EQ_STR(r.text, "hangar_output_append:n 42");
  CHECK_EQ_INT(hg_outline_pending(ol), 0);
}

static void result_reuse_and_free(void) {
  /* one result serves many lines; outputs from an earlier line do not linger */
  fresh(NULL);
  output("hangar_output_set:a.b 1", HG_OUTPUTS_SET, "a.b", "1");
  plain("next");
  CHECK(r.value == NULL);
  CHECK_EQ_INT(r.path.n, 0);
  consumed("hangar_chunk:left open");
  hg_outline_free(ol); /* frees the open key too (valgrind checks) */
  ol = NULL;
  hg_outline_result_free(&r);
}

TEST_MAIN(T(set_and_append), T(airplane_aliases), T(output_errors), T(legacy_form),
          T(ordinary_lines), T(masks), T(partial_lines), T(chunk_reassembly),
          T(long_reassembled_line), T(chunk_errors), T(chunk_memory_limit),
          T(reassembled_line_is_redacted), T(nested_chunks), T(result_reuse_and_free))
