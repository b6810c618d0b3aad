/* What a followed run prints and the exit code it gives the CLI. */
#include "check.h"
#include "cli/follow.h"

static void exit_codes(void) {
  cJSON *three = cJSON_CreateNumber(3), *zero = cJSON_CreateNumber(0), *big = cJSON_CreateNumber(300),
        *neg = cJSON_CreateNumber(-9), *null = cJSON_CreateNull();
  CHECK_EQ_INT(hg_follow_exit_code("succeeded", zero), 0);
  CHECK_EQ_INT(hg_follow_exit_code("succeeded", NULL), 0);
  CHECK_EQ_INT(hg_follow_exit_code("failed", three), 3);
  /* Failed without a usable exit code (timeout, lost agent): still a failure. */
  CHECK_EQ_INT(hg_follow_exit_code("failed", null), 1);
  CHECK_EQ_INT(hg_follow_exit_code("failed", NULL), 1);
  CHECK_EQ_INT(hg_follow_exit_code("failed", zero), 1);
  CHECK_EQ_INT(hg_follow_exit_code("failed", big), 1);
  CHECK_EQ_INT(hg_follow_exit_code("failed", neg), 1);
  CHECK_EQ_INT(hg_follow_exit_code("cancelled", null), 130);
  CHECK_EQ_INT(hg_follow_exit_code("running", null), 1);
  CHECK_EQ_INT(hg_follow_exit_code(NULL, null), 1);
  cJSON_Delete(three);
  cJSON_Delete(zero);
  cJSON_Delete(big);
  cJSON_Delete(neg);
  cJSON_Delete(null);
}

static char *slurp(FILE *f) {
  static char buf[4096];
  rewind(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  return buf;
}

static void events_go_to_their_streams(void) {
  FILE *out = tmpfile(), *err = tmpfile();
  hg_follow f = {NULL, "r1", 0, 0, out, err};
  cJSON *answer = cJSON_Parse(
      "{\"events\":["
      "{\"seq\":0,\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"hello\",\"partial\":false},"
      "{\"seq\":1,\"kind\":\"log\",\"stream\":\"stderr\",\"text\":\"careful\",\"partial\":false},"
      "{\"seq\":2,\"kind\":\"output\",\"op\":\"set\",\"path\":\"a\",\"value\":1},"
      "{\"seq\":3,\"kind\":\"log\",\"stream\":\"system\",\"text\":\"bad output line\"},"
      "{\"seq\":4,\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"long \",\"partial\":true},"
      "{\"seq\":5,\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"line\",\"partial\":false}"
      "],\"next_seq\":6,\"status\":\"running\",\"done\":false}");
  long long last = -1;
  hg_follow_print_events(&f, answer, &last);
  CHECK_EQ_INT(last, 5);
  /* Stdout lines on stdout; a partial event continues on the same line; output ops are not
   * printed (their line is in the log already). */
  CHECK_EQ_STR(slurp(out), "hello\nlong line\n");
  CHECK_EQ_STR(slurp(err), "careful\n[hangar] bad output line\n");
  cJSON_Delete(answer);
  fclose(out);
  fclose(err);
}

static void empty_answer_keeps_position(void) {
  FILE *out = tmpfile(), *err = tmpfile();
  hg_follow f = {NULL, "r1", 0, 0, out, err};
  cJSON *answer = cJSON_Parse("{\"events\":[],\"next_seq\":7,\"status\":\"running\",\"done\":false}");
  long long last = 6;
  hg_follow_print_events(&f, answer, &last);
  CHECK_EQ_INT(last, 6);
  CHECK_EQ_STR(slurp(out), "");
  cJSON_Delete(answer);
  fclose(out);
  fclose(err);
}

TEST_MAIN(T(exit_codes), T(events_go_to_their_streams), T(empty_answer_keeps_position))
