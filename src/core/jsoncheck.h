/* The rules of RFC 8259 that cJSON leaves unchecked, applied to a value cJSON has parsed. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/err.h"

/*
 * cJSON is lenient where the protocol is not: it reads numbers with leading zeros ("01"), with
 * no digit after the point ("1.", "1.e5"), raw control characters inside strings, and numbers
 * beyond a double's range (which become infinity, printed back as null). It also decodes the
 * escape \u0000 into a C string, which silently cuts the string there. Text that was invalid
 * JSON must be refused, and a value that would come out different from what was sent is data
 * loss, so callers that take JSON from outside run this after cJSON accepted it.
 *
 * This is not a second parser: the structure (brackets, commas, colons, literals) stays cJSON's
 * job. Only the inside of strings and numbers is looked at, which is where cJSON is lenient.
 */

/* text[0..len) is the text cJSON parsed into v (v may be NULL to skip the range check, which
 * needs the parsed numbers). Returns 0, or HG_EINVAL with err saying what is wrong and at which
 * byte offset of text ("a number with a leading zero at offset 3"). */
int hg_jsoncheck(const char *text, size_t len, const cJSON *v, hg_err *err);

/* The same check of text[from..to) alone, a stretch that starts and ends between tokens (or
 * is one string), offsets in messages counted from text: for a reader that checks a long body
 * piece by piece, in order, while each piece is still in the cache. No range check. */
int hg_jsoncheck_span(const char *text, size_t from, size_t to, hg_err *err);

/* How many bytes at the start of s[0..n) a JSON string holds as they are, up to the first '"',
 * '\\' or control character: n when s needs no escaping at all. */
size_t hg_jsoncheck_plain_len(const char *s, size_t n);
