/* Streaming redaction of a run's secrets, raw and encoded, in the bytes the run prints. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/*
 * A set holds one run's secrets and is shared by the scanners of that run's streams (stdout,
 * stderr). A scanner sits on one stream: it takes raw bytes as they are read and hands them on,
 * through its emit callback, with every occurrence of a secret replaced by HG_REDACT_TEXT.
 *
 * Forms masked for each secret S (at least HG_REDACT_MIN_LEN bytes):
 *   - S itself, byte for byte (a secret may hold any bytes, newlines included);
 *   - base64 with the standard (+/) and the URL-safe (-_) alphabet, with S starting at each of
 *     the three offsets within a 3-byte group: the characters that depend on S's bytes only,
 *     which every padded or unpadded encoding of data containing S contains; and, where S
 *     ends the data, those characters with the last one and the '=' padding;
 *   - percent-encoding of every byte outside RFC 3986's unreserved set, hex digits of either
 *     case (also mixed);
 *   - JSON string escaping as common serialisers write it: \" and \\ always; / or \/; \n \r \t,
 *     \b \f short or as \u00XX, other control bytes as \u00XX (hex of either case); and the
 *     HTML-safe variant that writes < > & as \u003c \u003e \u0026.
 * Matches that overlap or touch become one HG_REDACT_TEXT.
 *
 * Holding back. A scanner keeps only the bytes that could still be the beginning of a match
 * (at most as many as the longest form of any secret) and emits everything before them at
 * once. There is no timed release: a held prefix leaves only when more bytes show it is not a
 * secret, or at hg_redact_scanner_finish. Releasing a prefix early could let its continuation
 * complete a secret nobody masks, and the line framer after the scanner holds an unfinished
 * line anyway, so a timer would buy no latency.
 *
 * Emission. Each emit call carries bytes of one write (with that write's timestamp) or one
 * HG_REDACT_TEXT (with the timestamp of the write its first masked byte came from), and never
 * goes past a line terminator: a '\n' or '\r' is always the last byte of the call that carries
 * it. So a consumer that frames lines sees every line end as soon as it is emitted, and
 * may register a secret from that line (a `hangar_mask` line) inside the callback: the scanner
 * notices the new secret when the callback returns and scans every byte it has not emitted
 * yet, the rest of the same write included, with the new secret in effect.
 *
 * Cost. Scanning is linear in the input, with a bound on the work per byte that does not
 * depend on the number of secrets: a q-gram filter skips bytes that cannot begin a match, and
 * an Aho-Corasick automaton over all forms runs where one might. More secrets only let the
 * filter pass a few more positions to the automaton (bench/bench_redact measures it). Adding a secret is cheap; the automaton is rebuilt lazily,
 * by the next scanner that needs it, in time linear in the total size of all forms of all
 * secrets (some 15 ms for a thousand 30-byte secrets). A run that prints a new mask line
 * before every line of output pays that rebuild each time, and the rest of the write it is
 * in is scanned again.
 *
 * Threads: none. A set and its scanners are used from one thread; the set must outlive them.
 */

#define HG_REDACT_TEXT "[REDACTED]"
/* Shorter secrets are refused: masking them would garble ordinary output. */
#define HG_REDACT_MIN_LEN 6
/* Limits that keep a set's memory bounded whatever a run registers. */
#define HG_REDACT_MAX_LEN 65536              /* bytes of one secret */
#define HG_REDACT_MAX_SECRETS 4096           /* secrets in a set */
#define HG_REDACT_MAX_TOTAL (1024 * 1024)    /* bytes of all secrets of a set together */
#define HG_REDACT_MAX_FORMS (4 * 1024 * 1024) /* bytes of all forms of all secrets */

/* hg_redact_set_add's answer for a secret shorter than HG_REDACT_MIN_LEN (not registered). */
#define HG_REDACT_TOO_SHORT 1

typedef struct hg_redact_set hg_redact_set;
typedef struct hg_redact_scanner hg_redact_scanner;

/* Receives len bytes of output read at ts_ms. Returns 0, or a negative code that stops the
 * scanner (the write or finish that was emitting returns that code). */
typedef int (*hg_redact_emit_fn)(void *ud, const char *bytes, size_t len, int64_t ts_ms);

/* Returns 0 or HG_ENOMEM. */
int hg_redact_set_new(hg_redact_set **out, hg_err *err);
/* Wipes every copy of every secret. NULL is fine. */
void hg_redact_set_free(hg_redact_set *set);
/* Registers a secret (copied). Returns 0 (also when it was already registered),
 * HG_REDACT_TOO_SHORT (nothing registered: the caller should warn, naming the variable),
 * HG_ETOOBIG (a limit above; err says which, never the value) or HG_ENOMEM. May be called from
 * an emit callback of any scanner of the set. */
int hg_redact_set_add(hg_redact_set *set, const void *secret, size_t len, hg_err *err);
/* Number of secrets registered. */
size_t hg_redact_set_count(const hg_redact_set *set);

/* A scanner for one stream. Returns 0 or HG_ENOMEM. */
int hg_redact_scanner_new(hg_redact_scanner **out, hg_redact_set *set, hg_redact_emit_fn emit,
                          void *ud, hg_err *err);
/* Wipes the held bytes. NULL is fine. */
void hg_redact_scanner_free(hg_redact_scanner *sc);
/* Scans len bytes read at ts_ms and emits all of them that can no longer be part of a match.
 * Returns 0, HG_ENOMEM, or the emit callback's negative code. After an error the scanner only
 * returns that error again. Must not be called from its own emit callback. */
int hg_redact_scanner_write(hg_redact_scanner *sc, const void *bytes, size_t len, int64_t ts_ms,
                            hg_err *err);
/* End of stream: emits everything still held, masked where it matched. The scanner is then
 * empty and may take a new stream. Returns as hg_redact_scanner_write does. */
int hg_redact_scanner_finish(hg_redact_scanner *sc, hg_err *err);
/* Bytes currently held back (not yet emitted and not masked away). */
size_t hg_redact_scanner_held(const hg_redact_scanner *sc);
