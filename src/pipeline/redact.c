/* Streaming redaction: the forms of each secret, the matching automaton, per-stream scanners. */
#include "pipeline/redact.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * How matching works.
 *
 * Every form of every secret is a pattern: bytes plus, per byte, a flag saying "a hex digit,
 * either case". The automaton is Aho-Corasick over *folded* bytes (A-F folded to a-f), so a
 * flagged digit matches both cases; a hit is then verified against the exact bytes where the
 * flag is clear (a raw secret "Beef12" must not mask "beef12"). Folding touches six letters
 * only, so verification almost never rejects.
 *
 * Most bytes of ordinary output cannot begin a match, and the filter finds them without
 * looking at every position. Let m be the shortest pattern and s = m - 3 (at most 16). The
 * filter (a blocked Bloom filter: four bits in one 64-bit word per gram) holds every 4-byte gram
 * at offsets 0..s-1 of every pattern, byte for byte, with each case a flagged hex letter may
 * take; so it is as strict as verification and passes few grams of text that only look
 * alike. Kept to a few hundred KiB, it stays in cache. A match starting at p covers exactly
 * one of the positions j = i+s-1, i+2s-1, ... within [p, p+s-1], and its gram there is in the
 * filter; so where the gram at j is not, no match starts in [j-s+1, j] and s positions are
 * done with one look-up. Where it is, a second filter of the patterns' first grams names the
 * first position of [j-s+1, j] where a match could begin, if any; the automaton starts from
 * its root there and runs until the text it tracks is shorter than m and starts after where
 * it started (at a leaf, where most matches end, that text is its failure link's, whose depth
 * the leaf keeps); the filters resume from there. No match can begin in skipped bytes, no match
 * is reported twice (the rewind is shorter than any pattern), and each byte is revisited fewer
 * than m times.
 *
 * A scanner sees the stream as absolute byte positions. Bytes before `pos` have been emitted;
 * bytes [hbase, hbase + hlen) are held from earlier writes; the current write follows them.
 * Matches found are merged into `iv`, sorted, disjoint and not touching. An interval is emitted
 * as one HG_REDACT_TEXT once no later match can touch it, i.e. when it ends before the first
 * byte a future match could start at (the automaton's live suffix). Masked bytes before that
 * point are dropped, so a long run of masked output does not pile up.
 */

/* ---------------------------------------------------------------------------------------- */
/* Patterns                                                                                  */

static inline uint8_t fold(uint8_t c) {
  return (uint8_t)(c | ((unsigned)((unsigned)(c - 'A') < 6u) << 5));
}

static inline bool hex_letter(uint8_t c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

typedef struct form {
  uint32_t off, len; /* into the set's fbytes / fci */
  bool verify;       /* has a case-sensitive hex letter: a folded hit must be checked */
} form;

/* One node in 16 bytes, so that a step reads one cache line. Below the first levels of the
 * trie the forms of unrelated secrets no longer share prefixes and almost every node has one
 * child: such a node keeps that child and its byte inline, and the nodes are laid out so that
 * such a chain sits in consecutive slots (a match walks memory forward, not around it). */
typedef struct ac_node {
  uint32_t fail; /* longest proper suffix that is a trie prefix */
  uint32_t e;    /* one child: that child; more: its first edge in ebyte/etarget */
  uint32_t dc;   /* depth << 8 | the only child's byte (a leaf's: its fail link's depth) */
  uint32_t meta; /* children (9 bits) | N_DICT | N_PLAIN | (first pattern here + 1) << N_OUTSHIFT */
} ac_node;

#define N_NE 0x1FFu
#define N_DICT 0x200u  /* a pattern ends at a proper suffix (see automaton.dict) */
#define N_PLAIN 0x400u /* a pattern that needs no verification ends here */
#define N_OUTSHIFT 11  /* 20 bits */
/* A leaf where a pattern ends whose letters a-f must keep their case: `e`, unused by a leaf,
 * says which (bit k set: the k-th such letter is upper case), so that checking a hit needs no
 * look at the pattern's bytes, which are cold by then. */
#define N_CASE 0x80000000u
#define N_REPORT (~N_NE) /* any of the above: a match may end here */

typedef struct automaton {
  ac_node *nodes;
  uint32_t nnodes;
  uint32_t deep; /* nodes below SHALLOW_LEVELS start here */
  uint8_t *ebyte; /* the edges of nodes with two children or more, sorted by byte per node */
  uint32_t *etarget;
  uint32_t nedges;
  uint32_t *dict; /* per node: nearest node on the fail chain that ends a pattern; 0 = none */
  /* Per node (and 16 more): the only child's byte where the child is the next node and ends
   * no pattern, in the deep levels; else 'A', which no folded byte is (see scan_data). */
  uint8_t *chain;
  int32_t *pnext; /* per form: next form with the same folded bytes */
  uint32_t npats;
  uint32_t root[256];
  uint64_t *filter; /* blocked Bloom filter of the 4-byte grams near the start of each form */
  uint64_t fmask; /* words - 1 */
  uint64_t *start; /* the same for the gram at offset 0 of each form */
  uint64_t smask;
  uint64_t bitsets[256]; /* FILTER_BITS_SET bits each: see filter_bits */
  uint32_t minlen; /* of the shortest pattern */
  uint32_t stride; /* positions one filter look-up covers */
} automaton;

static inline uint32_t nd_depth(const ac_node *nd) {
  return nd->dc >> 8;
}

static inline int32_t nd_out(const ac_node *nd) {
  return (int32_t)(nd->meta >> N_OUTSHIFT & 0xFFFFFu) - 1;
}

struct hg_redact_set {
  uint8_t **sec; /* the secrets themselves, for recognising a repeat */
  uint32_t *seclen;
  size_t nsec, capsec, total;
  uint8_t *fbytes, *fci;
  size_t flen, fcap;
  form *forms;
  size_t nforms, capforms;
  uint64_t gen;   /* bumped by every secret added */
  uint64_t built; /* the gen `ac` was built for */
  automaton *ac;
};

static void wipe(void *p, size_t n) {
  if (p && n) explicit_bzero(p, n);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : 16;
  while (c < need) c *= 2;
  void *q = realloc(*p, c * elem);
  if (!q) return HG_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

/* The form storage only grows by reallocation while a secret is added, before its forms
 * exist, so a byte pushed never fails. */
static inline void fpush(hg_redact_set *set, uint8_t b, uint8_t ci) {
  set->fbytes[set->flen] = b;
  set->fci[set->flen] = ci;
  set->flen++;
}

static void fpush_hex(hg_redact_set *set, uint8_t v) {
  static const char hex[] = "0123456789ABCDEF";
  fpush(set, (uint8_t)hex[v >> 4], 1);
  fpush(set, (uint8_t)hex[v & 15], 1);
}

/* Closes the form that began at `start`, dropping it if an earlier form of the same secret
 * (from index `first`) is identical. */
static void fend(hg_redact_set *set, size_t start, size_t first) {
  uint32_t len = (uint32_t)(set->flen - start);
  for (size_t i = first; i < set->nforms; i++) {
    form *f = &set->forms[i];
    if (f->len == len && memcmp(set->fbytes + f->off, set->fbytes + start, len) == 0 &&
        memcmp(set->fci + f->off, set->fci + start, len) == 0) {
      set->flen = start;
      return;
    }
  }
  form *f = &set->forms[set->nforms++];
  f->off = (uint32_t)start;
  f->len = len;
  f->verify = false;
  for (uint32_t j = 0; j < len; j++)
    if (!set->fci[start + j] && hex_letter(set->fbytes[start + j])) f->verify = true;
}

static bool unreserved(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

/* The characters of base64(k unknown bytes, then s, then anything) that depend only on s;
 * padded: of base64(k unknown bytes, then s) as it ends, last character and '=' included. */
static void form_base64(hg_redact_set *set, const uint8_t *s, size_t n, unsigned k,
                        const char *alphabet, bool padded) {
  size_t first = (8 * k + 5) / 6, last = (8 * (k + n)) / 6;
  for (size_t i = first; i < last; i++) {
    /* Character i's six bits, counted from the top bit of s[0]: they start `shift` bits into
     * s[byte] and reach into s[byte + 1] when shift > 2 (which then exists: i < last). */
    size_t bit = 6 * i - 8 * (size_t)k, byte = bit / 8;
    unsigned shift = (unsigned)(bit % 8);
    unsigned w = (unsigned)s[byte] << 8;
    if (shift > 2) w |= s[byte + 1];
    fpush(set, (uint8_t)alphabet[(w >> (10 - shift)) & 63u], 0);
  }
  size_t rest = 8 * (k + n) - 6 * last; /* bits of s in a last, zero-filled character */
  if (!padded || rest == 0) return;
  unsigned v = (unsigned)(s[n - 1] & ((1u << rest) - 1)) << (6 - rest);
  fpush(set, (uint8_t)alphabet[v], 0);
  fpush(set, '=', 0);
  if (rest == 2) fpush(set, '=', 0);
}

typedef struct json_style {
  bool slash;   /* / as \/ */
  bool bf;      /* \b \f rather than \u0008 \u000c */
  bool ntr;     /* \n \r \t rather than \u00XX */
  bool html;    /* < > & as \u003c \u003e \u0026 */
} json_style;

/* The serialisers we know of: JSON.stringify, Python and cJSON; PHP; the plain \u00XX rule;
 * Go's encoding/json; everything as \u00XX; plain rule with \/. Identical results collapse. */
static const json_style json_styles[] = {
    {false, true, true, false}, {true, true, true, false},   {false, false, true, false},
    {false, false, true, true}, {false, false, false, false}, {true, false, true, false},
};

static void form_json(hg_redact_set *set, const uint8_t *s, size_t n, json_style st) {
  for (size_t i = 0; i < n; i++) {
    uint8_t c = s[i];
    char esc = 0;
    if (c == '"' || c == '\\') esc = (char)c;
    else if (c == '/' && st.slash) esc = '/';
    else if (c == '\n' && st.ntr) esc = 'n';
    else if (c == '\r' && st.ntr) esc = 'r';
    else if (c == '\t' && st.ntr) esc = 't';
    else if (c == '\b' && st.bf) esc = 'b';
    else if (c == '\f' && st.bf) esc = 'f';
    if (esc) {
      fpush(set, '\\', 0);
      fpush(set, (uint8_t)esc, 0);
    } else if (c < 0x20 || (st.html && (c == '<' || c == '>' || c == '&'))) {
      fpush(set, '\\', 0);
      fpush(set, 'u', 0);
      fpush(set, '0', 1);
      fpush(set, '0', 1);
      fpush_hex(set, c);
    } else {
      fpush(set, c, 0);
    }
  }
}

/* Appends every form of s; the caller reserved room for them. */
static void add_forms(hg_redact_set *set, const uint8_t *s, size_t n) {
  static const char std64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char url64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t first = set->nforms, start = set->flen;
  for (size_t i = 0; i < n; i++) fpush(set, s[i], 0);
  fend(set, start, first);
  for (unsigned k = 0; k < 3; k++) {
    for (int padded = 0; padded < 2; padded++) {
      start = set->flen;
      form_base64(set, s, n, k, std64, padded);
      fend(set, start, first);
      start = set->flen;
      form_base64(set, s, n, k, url64, padded);
      fend(set, start, first);
    }
  }
  start = set->flen;
  for (size_t i = 0; i < n; i++) {
    if (unreserved(s[i])) {
      fpush(set, s[i], 0);
    } else {
      fpush(set, '%', 0);
      fpush_hex(set, s[i]);
    }
  }
  fend(set, start, first);
  for (size_t v = 0; v < sizeof json_styles / sizeof json_styles[0]; v++) {
    start = set->flen;
    form_json(set, s, n, json_styles[v]);
    fend(set, start, first);
  }
}

/* An upper bound of the bytes add_forms appends for an n-byte secret, and of its forms. */
#define FORM_BYTES(n) ((n) * (1 + 12 * 2 + 3 + 6 * 6) + 256)
#define FORM_COUNT 32

int hg_redact_set_new(hg_redact_set **out, hg_err *err) {
  *out = calloc(1, sizeof **out);
  if (!*out) return hg_err_set(err, HG_ENOMEM, "out of memory for a redaction set");
  return 0;
}

static void ac_free(automaton *a) {
  if (!a) return;
  /* The edges, inline in the nodes or not, spell the secrets' forms out. */
  wipe(a->nodes, a->nnodes * sizeof *a->nodes);
  wipe(a->ebyte, a->nedges);
  wipe(a->chain, a->nnodes + 16);
  free(a->nodes);
  free(a->ebyte);
  free(a->etarget);
  free(a->dict);
  free(a->chain);
  free(a->pnext);
  free(a->filter);
  free(a->start);
  free(a);
}

void hg_redact_set_free(hg_redact_set *set) {
  if (!set) return;
  for (size_t i = 0; i < set->nsec; i++) {
    wipe(set->sec[i], set->seclen[i]);
    free(set->sec[i]);
  }
  free(set->sec);
  free(set->seclen);
  wipe(set->fbytes, set->fcap);
  free(set->fbytes);
  free(set->fci);
  free(set->forms);
  ac_free(set->ac);
  free(set);
}

size_t hg_redact_set_count(const hg_redact_set *set) {
  return set->nsec;
}

int hg_redact_set_add(hg_redact_set *set, const void *secret, size_t len, hg_err *err) {
  if (len < HG_REDACT_MIN_LEN) return HG_REDACT_TOO_SHORT;
  for (size_t i = 0; i < set->nsec; i++)
    if (set->seclen[i] == len && memcmp(set->sec[i], secret, len) == 0) return 0;
  if (len > HG_REDACT_MAX_LEN)
    return hg_err_set(err, HG_ETOOBIG, "a secret of %zu bytes is longer than the %d bytes masked",
                      len, HG_REDACT_MAX_LEN);
  if (set->nsec >= HG_REDACT_MAX_SECRETS)
    return hg_err_set(err, HG_ETOOBIG, "a run may register at most %d secrets",
                      HG_REDACT_MAX_SECRETS);
  if (set->total + len > HG_REDACT_MAX_TOTAL)
    return hg_err_set(err, HG_ETOOBIG, "a run's secrets may total at most %d bytes",
                      HG_REDACT_MAX_TOTAL);
  if (grow((void **)&set->sec, &set->capsec, set->nsec + 1, sizeof *set->sec) ||
      grow((void **)&set->forms, &set->capforms, set->nforms + FORM_COUNT, sizeof *set->forms))
    goto oom;
  /* seclen follows sec's capacity. */
  uint32_t *sl = realloc(set->seclen, set->capsec * sizeof *sl);
  if (!sl) goto oom;
  set->seclen = sl;
  size_t need = set->flen + FORM_BYTES(len);
  if (need > set->fcap) {
    size_t cap = set->fcap ? set->fcap : 1024;
    while (cap < need) cap *= 2;
    /* Not realloc: the old block held secrets and must be wiped, not just released. */
    uint8_t *nb = malloc(cap), *nc = malloc(cap);
    if (!nb || !nc) {
      free(nb);
      free(nc);
      goto oom;
    }
    if (set->flen) {
      memcpy(nb, set->fbytes, set->flen);
      memcpy(nc, set->fci, set->flen);
    }
    wipe(set->fbytes, set->fcap);
    free(set->fbytes);
    free(set->fci);
    set->fbytes = nb;
    set->fci = nc;
    set->fcap = cap;
  }
  uint8_t *copy = malloc(len);
  if (!copy) goto oom;
  memcpy(copy, secret, len);
  size_t flen0 = set->flen, nforms0 = set->nforms;
  add_forms(set, copy, len);
  if (set->flen > HG_REDACT_MAX_FORMS) {
    wipe(set->fbytes + flen0, set->flen - flen0);
    set->flen = flen0;
    set->nforms = nforms0;
    wipe(copy, len);
    free(copy);
    return hg_err_set(err, HG_ETOOBIG,
                      "a run's secrets and their encoded forms may total at most %d bytes",
                      HG_REDACT_MAX_FORMS);
  }
  set->sec[set->nsec] = copy;
  set->seclen[set->nsec] = (uint32_t)len;
  set->nsec++;
  set->total += len;
  set->gen++;
  return 0;
oom:
  return hg_err_set(err, HG_ENOMEM, "out of memory registering a secret");
}

/* ---------------------------------------------------------------------------------------- */
/* The automaton                                                                             */

/* The child of a node with more than one (0 if none for c). */
static inline uint32_t ac_edge(const automaton *a, const ac_node *nd, uint8_t c) {
  uint32_t lo = nd->e, hi = nd->e + (nd->meta & N_NE);
  while (hi - lo > 8) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a->ebyte[mid] <= c) lo = mid;
    else hi = mid;
  }
  for (; lo < hi; lo++)
    if (a->ebyte[lo] == c) return a->etarget[lo];
  return 0;
}

static inline uint32_t ac_child(const automaton *a, const ac_node *nd, uint8_t c) {
  if ((nd->meta & N_NE) == 1) return (uint8_t)nd->dc == c ? nd->e : 0;
  return ac_edge(a, nd, c);
}

/* The grams of the filter: 4 bytes as they load, hashed by one multiplication (whose bits 31
 * and up depend on every byte); bits 32.. pick a 64-bit word, the top byte which bits of it.
 * A shift by a constant, a mask and two look-ups keep a probe to a few instructions. */
#define FILTER_K 0x9E3779B97F4A7C15ull
/* The second filter's multiplier. With the first one's, the second filter (a quarter of the
 * words, the same bits) would pass about one in ten of the grams that pass the first by chance:
 * such a gram shares a word and bits with some pattern's gram there, and many of those are
 * first grams; with 1,000 secrets that was ~75 needless starts of the automaton per MB. */
#define START_K 0xD6E8FEB86659FD93ull
/* Bits per gram, and the largest filter (2^FILTER_MAX_WORDS_LOG words): sized like this it
 * stays in the L2 cache with a thousand secrets and passes well under 1% of random grams. */
#define FILTER_BITS_PER_GRAM 16
#define FILTER_BITS_SET 4 /* per gram, in its word */
#define FILTER_MAX_WORDS_LOG 15
#define START_BITS_PER_GRAM 32
#define START_MAX_WORDS_LOG 13

/* The bits, looked up by the top byte of the hash in a table of 256 sets of them: shifts by a
 * variable amount would all want the one register (cl) x86 shifts by. More bits cost nothing
 * a look-up and pass fewer chance grams, each of which costs a scan of its window by the
 * second filter: with 1,000 secrets (bench_redact), 0.82% of look-ups pass with 4 bits, 1.0%
 * with 2; most of the rest are grams some pattern has. */
static inline uint64_t filter_bits(const automaton *a, uint64_t h) {
  return a->bitsets[h >> 56];
}

/* Adds the gram at b (flags in ci), hashed with the multiplier k, to the filter at f (words - 1:
 * mask), in every case its flagged hex letters may take. */
static void filter_add(const automaton *a, uint64_t *f, uint64_t mask, uint64_t k,
                       const uint8_t *b, const uint8_t *ci) {
  uint8_t g[4];
  unsigned vary = 0;
  for (unsigned q = 0; q < 4; q++) {
    g[q] = b[q];
    if (ci[q] && hex_letter(b[q])) vary |= 1u << q;
  }
  for (unsigned sub = vary;; sub = (sub - 1) & vary) {
    uint8_t v[4];
    for (unsigned q = 0; q < 4; q++) v[q] = (uint8_t)(g[q] ^ (sub >> q & 1u ? 0x20 : 0));
    uint32_t w;
    memcpy(&w, v, 4);
    uint64_t h = (uint64_t)w * k;
    f[(h >> 32) & mask] |= filter_bits(a, h);
    if (!sub) break;
  }
}

/* Levels of the trie laid out breadth-first; the rest is laid out subtree by subtree. */
#define SHALLOW_LEVELS 2
/* Cache lines of nodes asked for on entering the deeper levels (4 nodes a line). */
#define PREFETCH_LINES 10

static int ac_build(const hg_redact_set *set, automaton **out) {
  *out = NULL;
  automaton *a = calloc(1, sizeof *a);
  if (!a) return HG_ENOMEM;
  a->npats = (uint32_t)set->nforms;
  if (a->npats == 0) {
    *out = a;
    return 0;
  }
  size_t cap = set->flen + 1;
  uint32_t *child = calloc(cap, sizeof *child), *sib = calloc(cap, sizeof *sib);
  uint32_t *depth = calloc(cap, sizeof *depth), *queue = malloc(cap * sizeof *queue);
  uint32_t *newidx = malloc(cap * sizeof *newidx), *order = malloc(cap * sizeof *order);
  uint32_t *stack = malloc(cap * sizeof *stack);
  int32_t *outp = malloc(cap * sizeof *outp);
  uint8_t *cb = calloc(cap, 1);
  a->pnext = malloc(a->npats * sizeof *a->pnext);
  int rc = HG_ENOMEM;
  if (!child || !sib || !depth || !queue || !newidx || !order || !stack || !outp || !cb ||
      !a->pnext)
    goto done;
  uint32_t rootc[256] = {0};
  uint32_t n = 1, minlen = UINT32_MAX;
  outp[0] = -1;
  for (uint32_t p = 0; p < a->npats; p++) {
    const form *f = &set->forms[p];
    if (f->len < minlen) minlen = f->len;
    uint32_t u = 0;
    for (uint32_t j = 0; j < f->len; j++) {
      uint8_t c = fold(set->fbytes[f->off + j]);
      uint32_t prev = 0, cur = child[u], v;
      if (u == 0 && rootc[c]) {
        u = rootc[c];
        continue;
      }
      while (cur && cb[cur] < c) {
        prev = cur;
        cur = sib[cur];
      }
      if (cur && cb[cur] == c) {
        v = cur;
      } else {
        v = n++;
        cb[v] = c;
        depth[v] = depth[u] + 1;
        outp[v] = -1;
        sib[v] = cur;
        if (prev) sib[prev] = v;
        else child[u] = v;
        if (u == 0) rootc[c] = v;
      }
      u = v;
    }
    a->pnext[p] = outp[u];
    outp[u] = (int32_t)p;
  }

  /* Fail links need those of shallower nodes: they are computed in breadth-first order. */
  uint32_t qh = 0, qt = 0;
  queue[qt++] = 0;
  while (qh < qt)
    for (uint32_t v = child[queue[qh++]]; v; v = sib[v]) queue[qt++] = v;
  /* The layout: the first levels breadth-first, as every scan runs through them; below, each
   * subtree depth-first, so that a chain of single children takes consecutive slots. */
  uint32_t no = 0, qi = 0;
  while (qi < n && depth[queue[qi]] <= SHALLOW_LEVELS) order[no++] = queue[qi++];
  a->deep = no;
  for (; qi < n && depth[queue[qi]] == SHALLOW_LEVELS + 1; qi++) {
    uint32_t sp = 0;
    stack[sp++] = queue[qi];
    while (sp) {
      uint32_t u = stack[--sp];
      order[no++] = u;
      for (uint32_t v = child[u]; v; v = sib[v]) stack[sp++] = v;
    }
  }
  for (uint32_t i = 0; i < n; i++) newidx[order[i]] = i;

  a->nnodes = n;
  a->nodes = malloc(n * sizeof *a->nodes);
  a->dict = calloc(n, sizeof *a->dict);
  a->chain = malloc(n + 16);
  a->ebyte = malloc(n);
  a->etarget = malloc(n * sizeof *a->etarget);
  if (!a->nodes || !a->dict || !a->ebyte || !a->etarget || !a->chain) goto done;
  uint32_t ne = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t u = order[i], kids = 0;
    ac_node *nd = &a->nodes[i];
    for (uint32_t v = child[u]; v; v = sib[v]) kids++;
    nd->fail = 0;
    nd->dc = depth[u] << 8;
    nd->meta = kids | (uint32_t)(outp[u] + 1) << N_OUTSHIFT;
    for (int32_t p = outp[u]; p >= 0; p = a->pnext[p])
      if (!set->forms[p].verify) nd->meta |= N_PLAIN;
    if (kids == 0 && outp[u] >= 0 && !(nd->meta & N_PLAIN)) {
      const form *f = &set->forms[outp[u]];
      uint32_t mask = 0, k = 0;
      for (uint32_t j = 0; j < f->len && k <= 32; j++) {
        uint8_t b = set->fbytes[f->off + j];
        if (!hex_letter(b)) continue;
        if (set->fci[f->off + j]) k = 33; /* either case here: not for a mask */
        else if (k < 32) mask |= (uint32_t)!(b & 0x20) << k++;
        else k = 33;
      }
      if (k <= 32) {
        nd->e = mask;
        nd->meta |= N_CASE;
        continue;
      }
    }
    if (kids == 1) {
      nd->e = newidx[child[u]];
      nd->dc |= cb[child[u]];
      continue;
    }
    nd->e = ne;
    for (uint32_t v = child[u]; v; v = sib[v]) {
      a->ebyte[ne] = cb[v];
      a->etarget[ne] = newidx[v];
      ne++;
    }
  }
  a->nedges = ne;
  for (unsigned c = 0; c < 256; c++) a->root[c] = rootc[c] ? newidx[rootc[c]] : 0;
  for (uint32_t q = 0; q < n; q++) {
    uint32_t u = queue[q];
    for (uint32_t v = child[u]; v; v = sib[v]) {
      uint32_t vi = newidx[v], fl = 0;
      if (u != 0) {
        uint32_t f = a->nodes[newidx[u]].fail;
        for (;;) {
          uint32_t w = f ? ac_child(a, &a->nodes[f], cb[v]) : a->root[cb[v]];
          if (w) {
            fl = w;
            break;
          }
          if (!f) break;
          f = a->nodes[f].fail;
        }
      }
      a->nodes[vi].fail = fl;
      a->dict[vi] = nd_out(&a->nodes[fl]) >= 0 ? fl : a->dict[fl];
      if (a->dict[vi]) a->nodes[vi].meta |= N_DICT;
      /* A leaf keeps its failure link's depth in the byte a single child would have (see
       * scan_data); 255: too deep to say. */
      if (!(a->nodes[vi].meta & N_NE)) {
        uint32_t fd = nd_depth(&a->nodes[fl]);
        a->nodes[vi].dc |= fd < 255 ? fd : 255;
      }
    }
  }

  memset(a->chain, 'A', n + 16);
  for (uint32_t i = a->deep; i + 1 < n; i++) {
    const ac_node *nd = &a->nodes[i];
    if ((nd->meta & N_NE) == 1 && nd->e == i + 1 && !(a->nodes[i + 1].meta & N_REPORT))
      a->chain[i] = (uint8_t)nd->dc;
  }
  a->minlen = minlen;
  a->stride = minlen - 3 < 16 ? minlen - 3 : 16;
  uint64_t entries = (uint64_t)a->npats * a->stride;
  unsigned wlog = 6;
  while (wlog < FILTER_MAX_WORDS_LOG && (64ull << wlog) < entries * FILTER_BITS_PER_GRAM) wlog++;
  a->fmask = ((uint64_t)1 << wlog) - 1;
  for (unsigned i = 0; i < 256; i++) {
    uint32_t x = i * 0x9E3779B1u + 0x7F4A7C15u;
    a->bitsets[i] = 0;
    for (unsigned k = 0; k < FILTER_BITS_SET;) {
      uint64_t bit = 1ull << (x >> 26);
      x = x * 1664525u + 1013904223u;
      if (!(a->bitsets[i] & bit)) {
        a->bitsets[i] |= bit;
        k++;
      }
    }
  }
  a->filter = calloc((size_t)1 << wlog, sizeof *a->filter);
  /* Few grams, more bits each: it is looked at only where the first filter passed, at every
   * position where a match could begin. */
  wlog = 6;
  while (wlog < START_MAX_WORDS_LOG && (64ull << wlog) < a->npats * START_BITS_PER_GRAM) wlog++;
  a->smask = ((uint64_t)1 << wlog) - 1;
  a->start = calloc((size_t)1 << wlog, sizeof *a->start);
  if (!a->filter || !a->start) goto done;
  for (uint32_t p = 0; p < a->npats; p++) {
    const uint8_t *b = set->fbytes + set->forms[p].off, *ci = set->fci + set->forms[p].off;
    for (uint32_t k = 0; k < a->stride; k++)
      filter_add(a, a->filter, a->fmask, FILTER_K, b + k, ci + k);
    filter_add(a, a->start, a->smask, START_K, b, ci);
  }
  rc = 0;
done:
  wipe(cb, cap);
  free(child);
  free(sib);
  free(depth);
  free(queue);
  free(newidx);
  free(order);
  free(stack);
  free(outp);
  free(cb);
  if (rc) ac_free(a);
  else *out = a;
  return rc;
}

static int set_build(hg_redact_set *set, hg_err *err) {
  if (set->ac && set->built == set->gen) return 0;
  automaton *a;
  if (ac_build(set, &a)) return hg_err_set(err, HG_ENOMEM, "out of memory building the redactor");
  ac_free(set->ac);
  set->ac = a;
  set->built = set->gen;
  return 0;
}

static inline uint32_t ac_step(const automaton *a, uint32_t s, uint8_t c) {
  for (;;) {
    if (s == 0) return a->root[c];
    const ac_node *nd = &a->nodes[s];
    uint32_t t = ac_child(a, nd, c);
    if (t) return t;
    s = nd->fail;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Scanners                                                                                  */

typedef struct seg {
  uint64_t start; /* held bytes from here to the next seg's start came from one write */
  int64_t ts;
} seg;

typedef struct ival {
  uint64_t s, e;
  int64_t ts; /* of the write byte s came from */
} ival;

struct hg_redact_scanner {
  hg_redact_set *set;
  hg_redact_emit_fn emit;
  void *ud;
  uint64_t gen;   /* the set's gen that `state` belongs to */
  uint32_t state;
  uint64_t pos;   /* bytes before this are emitted or masked by iv[0] */
  uint8_t *hold;
  size_t hlen, hcap;
  uint64_t hbase;
  seg *segs;
  size_t nsegs, capsegs;
  ival *iv;
  size_t niv, capiv;
  /* The write being processed; it follows the held bytes. */
  const uint8_t *d;
  size_t dlen;
  int64_t dts;
  uint64_t dbase;
  int failed;
};

#define GEN_CHANGED 1

int hg_redact_scanner_new(hg_redact_scanner **out, hg_redact_set *set, hg_redact_emit_fn emit,
                          void *ud, hg_err *err) {
  hg_redact_scanner *sc = calloc(1, sizeof *sc);
  *out = sc;
  if (!sc) return hg_err_set(err, HG_ENOMEM, "out of memory for a redaction scanner");
  sc->set = set;
  sc->emit = emit;
  sc->ud = ud;
  sc->gen = set->gen - 1; /* the first write syncs */
  return 0;
}

void hg_redact_scanner_free(hg_redact_scanner *sc) {
  if (!sc) return;
  wipe(sc->hold, sc->hcap);
  free(sc->hold);
  free(sc->segs);
  free(sc->iv);
  free(sc);
}

size_t hg_redact_scanner_held(const hg_redact_scanner *sc) {
  return sc->hlen;
}

static inline uint8_t byte_at(const hg_redact_scanner *sc, uint64_t abs) {
  return abs < sc->dbase ? sc->hold[abs - sc->hbase] : sc->d[abs - sc->dbase];
}

static int64_t ts_at(const hg_redact_scanner *sc, uint64_t abs) {
  if (abs >= sc->dbase || sc->nsegs == 0) return sc->dts;
  size_t i = 0;
  while (i + 1 < sc->nsegs && sc->segs[i + 1].start <= abs) i++;
  return sc->segs[i].ts;
}

static void add_match(hg_redact_scanner *sc, uint64_t s, uint64_t e) {
  uint64_t ms = s, me = e;
  int64_t mts = 0;
  bool have = false;
  /* Matches arrive by end position, so a new one touches a suffix of the list. */
  while (sc->niv > 0 && s <= sc->iv[sc->niv - 1].e) {
    ival *t = &sc->iv[--sc->niv];
    if (t->e > me) me = t->e;
    if (t->s <= ms) {
      ms = t->s;
      mts = t->ts;
      have = true;
    }
  }
  if (!have) mts = ts_at(sc, ms);
  if (grow((void **)&sc->iv, &sc->capiv, sc->niv + 1, sizeof *sc->iv)) {
    sc->failed = HG_ENOMEM; /* nothing more is emitted: an unrecorded match must not leak */
    return;
  }
  sc->iv[sc->niv++] = (ival){ms, me, mts};
}

static bool verify(const hg_redact_scanner *sc, const form *f, uint64_t end) {
  const uint8_t *pb = sc->set->fbytes + f->off, *pc = sc->set->fci + f->off;
  uint64_t start = end - f->len;
  for (uint32_t j = 0; j < f->len; j++)
    if (!pc[j] && byte_at(sc, start + j) != pb[j]) return false;
  return true;
}

/* Whether the letters a-f in [start, end) have the cases mask says (see N_CASE). */
static bool case_fits(const hg_redact_scanner *sc, uint32_t mask, uint64_t start, uint64_t end) {
  /* Without a branch per byte: which bytes are a-f follows the secret, which with many
   * secrets the branch predictor cannot learn. */
  uint32_t bad = 0;
  for (uint64_t k = start; k < end; k++) {
    uint32_t b = byte_at(sc, k), hex = (uint8_t)((b | 0x20) - 'a') < 6;
    bad |= hex & ~(b >> 5 ^ mask);
    mask >>= hex;
  }
  return !bad;
}

/* The automaton is in state s after the byte before `end`: records the longest real match. */
static void report(hg_redact_scanner *sc, const automaton *a, uint32_t s, uint64_t end) {
  uint32_t t = nd_out(&a->nodes[s]) >= 0 ? s : a->dict[s];
  while (t) {
    const ac_node *nd = &a->nodes[t];
    if ((nd->meta & N_PLAIN) ||
        ((nd->meta & N_CASE) && case_fits(sc, nd->e, end - nd_depth(nd), end))) {
      /* The patterns ending at a node all have its depth for length: no need to look at them. */
      add_match(sc, end - nd_depth(nd), end);
      return;
    }
    for (int32_t p = nd_out(nd); p >= 0; p = a->pnext[p]) {
      const form *f = &sc->set->forms[p];
      if (!f->verify || verify(sc, f, end)) {
        add_match(sc, end - f->len, end);
        return;
      }
    }
    t = a->dict[t];
  }
}

/* Runs the automaton over held bytes [from, end of hold). */
static void scan_hold(hg_redact_scanner *sc, uint64_t from) {
  const automaton *a = sc->set->ac;
  if (a->npats == 0) return;
  uint32_t s = sc->state;
  for (uint64_t abs = from; abs < sc->dbase; abs++) {
    s = ac_step(a, s, fold(sc->hold[abs - sc->hbase]));
    if (a->nodes[s].meta & N_REPORT) report(sc, a, s, abs + 1);
  }
  sc->state = s;
}

/* The 4 bytes at p, as they lie in memory. */
static inline uint32_t load32(const uint8_t *p) {
  uint32_t w;
  memcpy(&w, p, 4);
  return w;
}

/* 1 when the gram at p may be one of a pattern's. */
static inline unsigned probe(const uint64_t *filter, uint64_t mask, uint64_t k,
                             const uint64_t *bitsets, const uint8_t *p) {
  uint64_t h = (uint64_t)load32(p) * k, m = bitsets[h >> 56];
  return (filter[(h >> 32) & mask] & m) == m;
}

/* Where the automaton must start: the first position at or after i where the filters cannot
 * rule a match out, or, if none, the first of the last three, which have no whole gram. Where
 * the first filter passes the gram at j, a match may begin anywhere in [j-s+1, j]: the second, of
 * beginnings, picks the first such position whose gram could begin a pattern, so that the
 * automaton neither starts on a chance hit nor walks through the text before a match.
 * Not inlined: the unrolled probes need every register, which the automaton's loop around the
 * call would otherwise take. */
static __attribute__((noinline)) size_t skip(const automaton *a, const uint8_t *d, size_t i,
                                             size_t n) {
  const uint64_t *filter = a->filter, *start = a->start, *bitsets = a->bitsets;
  const uint64_t mask = a->fmask, smask = a->smask;
  const size_t s = a->stride;
  size_t j = i + s - 1;
  for (;;) {
    /* Four independent look-ups an iteration; a branch each, as a hit is rare. */
    while (j + 3 * s + 4 <= n) {
      const uint8_t *p = d + j;
      if (probe(filter, mask, FILTER_K, bitsets, p)) goto hit;
      if (probe(filter, mask, FILTER_K, bitsets, p + s)) {
        j += s;
        goto hit;
      }
      if (probe(filter, mask, FILTER_K, bitsets, p + 2 * s)) {
        j += 2 * s;
        goto hit;
      }
      if (probe(filter, mask, FILTER_K, bitsets, p + 3 * s)) {
        j += 3 * s;
        goto hit;
      }
      j += 4 * s;
    }
    while (j + 4 <= n && !probe(filter, mask, FILTER_K, bitsets, d + j)) j += s;
    if (j + 4 > n) {
      /* The tail, too short for the gram at j. A match starting at p <= n - 4 still has its
       * first gram here for the second filter to check; only the last three positions are
       * left to the automaton. (It walked every byte of the tail from its root, and the walks
       * from the first levels, cold with many secrets, cost a few percent at 64 KiB a write.) */
      size_t p = j - s + 1;
      for (; p + 4 <= n; p++)
        if (probe(start, smask, START_K, bitsets, d + p)) return p;
      return p;
    }
  hit:
    for (size_t p = j - s + 1; p <= j; p++)
      if (probe(start, smask, START_K, bitsets, d + p)) return p;
    j += s;
  }
}

/* Scans the current write from offset i on. */
static void scan_data(hg_redact_scanner *sc, size_t i) {
  const automaton *a = sc->set->ac;
  if (a->npats == 0) return;
  const uint8_t *d = sc->d;
  const size_t n = sc->dlen;
  const uint32_t m = a->minlen, deep = a->deep;
  const uint32_t ahead = a->nnodes > 4 * PREFETCH_LINES ? a->nnodes - 4 * PREFETCH_LINES : 0;
  uint32_t s = sc->state;
  size_t c = i; /* where the automaton last started from its root (or the write's start) */
  while (i < n) {
    if (s == 0) {
      i = skip(a, d, i, n);
      if (i >= n) break;
      c = i;
    }
    while (i < n) {
      const uint32_t from = s;
      s = ac_step(a, s, fold(d[i]));
      i++;
      const ac_node *nd = &a->nodes[s];
      /* (Only within the array: a pointer past its end would be undefined, prefetched or not.) */
      if (s >= deep && from < deep && s < ahead) {
        /* Into the cold, deeper levels, most likely along one form, whose next nodes follow
         * this one: ask for as many as a common secret has, along with this one. */
        for (unsigned k = 1; k <= PREFETCH_LINES; k++) __builtin_prefetch(nd + 4 * k);
      }
      if (nd->meta & N_REPORT) report(sc, a, s, sc->dbase + i);
      if (!(nd->meta & N_NE) && i < n) {
        /* A leaf (most matches end at one): the next byte goes through its failure link, so
         * only the text that link stands for can still be part of a match. Let the filters
         * take over from where that text begins, rather than load the link's node and its
         * edges, which with many secrets are cold. Not at the write's end, where the state
         * says what to hold back. */
        const uint32_t fd = (uint8_t)nd->dc;
        if (fd < 255 && fd < m && i - c > fd) {
          i -= fd;
          s = 0;
          break;
        }
      }
      const uint32_t depth = nd_depth(nd);
      if (depth > SHALLOW_LEVELS + PREFETCH_LINES * 4 && (depth & 3) == 0 && s < ahead)
        __builtin_prefetch(nd + 4 * PREFETCH_LINES); /* a long one: stay ahead */
      if (depth < m && i - c > depth) {
        /* Nothing as long as a pattern is in progress: let the filter look again from where the
         * tracked text begins. */
        i -= depth;
        s = 0;
        break;
      }
#ifdef __SSE2__
      if (a->chain[s] != 'A' && i + 16 <= n) {
        /* Along a form's chain, sixteen bytes at a time: each step of it would only have gone
         * to the next node, which ends no pattern, and from here on no step can meet the
         * rewind above (depth and i - c grow together). With many secrets a match is mostly
         * such steps, over nodes that are cold; their bytes here take one line or two. */
        const __m128i v = _mm_loadu_si128((const __m128i *)(d + i));
        const __m128i af = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('A' - 1)),
                                         _mm_cmplt_epi8(v, _mm_set1_epi8('G')));
        const __m128i f = _mm_or_si128(v, _mm_and_si128(af, _mm_set1_epi8(0x20)));
        const __m128i ch = _mm_loadu_si128((const __m128i *)(a->chain + s));
        const unsigned same = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(f, ch));
        const unsigned t = (unsigned)__builtin_ctz(~same | 0x10000u);
        s += t;
        i += t;
      }
#endif
    }
  }
  sc->state = s;
}

/* Matches at or after abs are to be found again from the automaton's root. */
static void rescan_from(hg_redact_scanner *sc, uint64_t abs) {
  sc->state = 0;
  if (abs < sc->dbase) {
    scan_hold(sc, abs);
    scan_data(sc, 0);
  } else {
    scan_data(sc, (size_t)(abs - sc->dbase));
  }
}

/* Brings the scanner up to the set's secrets: held bytes are scanned again with all of them. */
static int sync_set(hg_redact_scanner *sc, hg_err *err) {
  hg_redact_set *set = sc->set;
  if (sc->gen == set->gen && set->ac) return 0;
  if (set_build(set, err)) return sc->failed = HG_ENOMEM;
  sc->gen = set->gen;
  /* Only an interval that began before the held bytes (whose own bytes are gone) is kept;
   * the others are found again. */
  size_t keep = sc->niv > 0 && sc->iv[0].s < sc->hbase ? 1 : 0;
  sc->niv = keep;
  sc->state = 0;
  scan_hold(sc, sc->hbase); /* the write's own bytes are scanned next, by the caller */
  return 0;
}

static uint32_t live_depth(const hg_redact_scanner *sc) {
  const automaton *a = sc->set->ac;
  return a && a->npats ? nd_depth(&a->nodes[sc->state]) : 0;
}

/* How many of the n bytes at p an emit call takes: up to and including the first '\n' or
 * '\r', or all of them. One pass, sixteen bytes at a time with SSE2 (every x86-64 has it),
 * instead of looking for each terminator apart: this runs once per line of output. */
static size_t line_part(const uint8_t *p, size_t n) {
  size_t i = 0;
#ifdef __SSE2__
  const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
    if (m) return i + (size_t)__builtin_ctz(m) + 1;
  }
#endif
  for (; i < n; i++)
    if (p[i] == '\n' || p[i] == '\r') return i + 1;
  return n;
}

/* Emits bytes [pos, lim) in calls that end at a line terminator, a write boundary, or lim. */
static int emit_bytes(hg_redact_scanner *sc, uint64_t lim) {
  while (sc->pos < lim) {
    const uint8_t *p;
    size_t n;
    int64_t ts;
    if (sc->pos < sc->dbase) {
      size_t i = 0;
      while (i + 1 < sc->nsegs && sc->segs[i + 1].start <= sc->pos) i++;
      uint64_t segend = i + 1 < sc->nsegs ? sc->segs[i + 1].start : sc->dbase;
      if (segend > lim) segend = lim;
      p = sc->hold + (sc->pos - sc->hbase);
      n = (size_t)(segend - sc->pos);
      ts = sc->segs[i].ts;
    } else {
      p = sc->d + (sc->pos - sc->dbase);
      n = (size_t)(lim - sc->pos);
      ts = sc->dts;
    }
    n = line_part(p, n);
    int rc = sc->emit(sc->ud, (const char *)p, n, ts);
    if (rc < 0) return sc->failed = rc;
    sc->pos += n;
    if (sc->set->gen != sc->gen) return GEN_CHANGED;
  }
  return 0;
}

/* Emits everything before lim that no future match can touch (all of it when final). */
static int emit_upto(hg_redact_scanner *sc, uint64_t lim, bool final) {
  size_t k = 0;
  int rc = 0;
  while (sc->pos < lim) {
    if (k < sc->niv && sc->iv[k].s <= sc->pos) {
      if (!final && sc->iv[k].e >= lim) break; /* a later match may still extend it */
      rc = sc->emit(sc->ud, HG_REDACT_TEXT, sizeof HG_REDACT_TEXT - 1, sc->iv[k].ts);
      if (rc < 0) {
        sc->failed = rc;
        break;
      }
      sc->pos = sc->iv[k].e;
      k++;
      if (sc->set->gen != sc->gen) {
        rc = GEN_CHANGED;
        break;
      }
      continue;
    }
    uint64_t stop = k < sc->niv && sc->iv[k].s < lim ? sc->iv[k].s : lim;
    rc = emit_bytes(sc, stop);
    if (rc) break;
  }
  if (k) {
    memmove(sc->iv, sc->iv + k, (sc->niv - k) * sizeof *sc->iv);
    sc->niv -= k;
  }
  return rc;
}

/* Emits what can be emitted, rescanning whenever an emit callback added a secret. */
static int drain(hg_redact_scanner *sc, bool final, hg_err *err) {
  for (;;) {
    if (sc->failed) break;
    uint64_t end = sc->dbase + sc->dlen;
    uint64_t lim = final ? end : end - live_depth(sc);
    int rc = emit_upto(sc, lim, final);
    if (rc != GEN_CHANGED) break;
    if (set_build(sc->set, err)) return sc->failed = HG_ENOMEM;
    sc->gen = sc->set->gen;
    sc->niv = 0; /* every interval before pos was emitted; the rest are found again */
    rescan_from(sc, sc->pos);
  }
  if (sc->failed == HG_ENOMEM)
    return hg_err_set(err, HG_ENOMEM, "out of memory while redacting output");
  if (sc->failed) return hg_err_set(err, sc->failed, "the redactor's consumer failed");
  return 0;
}

/* Keeps bytes [from, end of write) as the new held bytes. */
static int retain(hg_redact_scanner *sc, uint64_t from) {
  uint64_t end = sc->dbase + sc->dlen;
  size_t keep = (size_t)(end - from), old = sc->hlen;
  size_t fromh = from < sc->dbase ? (size_t)(sc->dbase - from) : 0; /* kept from hold */
  if (keep > sc->hcap) {
    size_t cap = sc->hcap ? sc->hcap : 256;
    while (cap < keep) cap *= 2;
    uint8_t *nh = malloc(cap);
    if (!nh) return sc->failed = HG_ENOMEM;
    if (fromh) memcpy(nh, sc->hold + (old - fromh), fromh);
    wipe(sc->hold, sc->hcap);
    free(sc->hold);
    sc->hold = nh;
    sc->hcap = cap;
  } else if (fromh && fromh < old) {
    memmove(sc->hold, sc->hold + (old - fromh), fromh);
  }
  size_t fromd = keep - fromh;
  if (fromd) memcpy(sc->hold + fromh, sc->d + (sc->dlen - fromd), fromd);
  if (old > keep) wipe(sc->hold + keep, old - keep);

  size_t drop = 0;
  while (drop < sc->nsegs &&
         (drop + 1 < sc->nsegs ? sc->segs[drop + 1].start : sc->dbase) <= from)
    drop++;
  if (drop) {
    memmove(sc->segs, sc->segs + drop, (sc->nsegs - drop) * sizeof *sc->segs);
    sc->nsegs -= drop;
  }
  if (sc->nsegs && sc->segs[0].start < from) sc->segs[0].start = from;
  if (fromd && !(sc->nsegs && sc->segs[sc->nsegs - 1].ts == sc->dts)) {
    if (grow((void **)&sc->segs, &sc->capsegs, sc->nsegs + 1, sizeof *sc->segs))
      return sc->failed = HG_ENOMEM;
    sc->segs[sc->nsegs++] = (seg){end - fromd, sc->dts};
  }
  sc->hbase = from;
  sc->hlen = keep;
  return 0;
}

int hg_redact_scanner_write(hg_redact_scanner *sc, const void *bytes, size_t len, int64_t ts_ms,
                            hg_err *err) {
  if (sc->failed) return hg_err_set(err, sc->failed, "the redactor failed earlier");
  if (len == 0) return 0;
  sc->d = bytes;
  sc->dlen = len;
  sc->dts = ts_ms;
  sc->dbase = sc->hbase + sc->hlen;
  int rc = sync_set(sc, err);
  if (!rc) {
    scan_data(sc, 0);
    rc = drain(sc, false, err);
  }
  if (!rc) {
    uint64_t end = sc->dbase + sc->dlen;
    if (retain(sc, end - live_depth(sc)))
      rc = hg_err_set(err, HG_ENOMEM, "out of memory holding back output");
  }
  sc->d = NULL;
  sc->dlen = 0;
  sc->dbase = sc->hbase + sc->hlen;
  return rc;
}

int hg_redact_scanner_finish(hg_redact_scanner *sc, hg_err *err) {
  if (sc->failed) return hg_err_set(err, sc->failed, "the redactor failed earlier");
  sc->d = NULL;
  sc->dlen = 0;
  sc->dbase = sc->hbase + sc->hlen;
  /* A stream that held nothing has nothing to scan: no automaton is built for it (a run that
   * wrote nothing at all would build one at its end, for no byte). */
  int rc = sc->hlen || sc->niv ? sync_set(sc, err) : 0;
  if (!rc) rc = drain(sc, true, err);
  if (rc) return rc;
  wipe(sc->hold, sc->hlen);
  sc->hbase = sc->dbase;
  sc->pos = sc->hbase;
  sc->hlen = 0;
  sc->nsegs = 0;
  sc->niv = 0;
  sc->state = 0;
  return 0;
}
