/* hdrlog: the V2 compressed histogram encoding and the interval log of
 * HdrHistogram, for struct hist. See hdrlog.h; the format is HdrHistogram's
 * (HistogramLogWriter, and AbstractHistogram's encodeIntoCompressedByteBuffer).
 */
#include "tcpmsg/hdrlog.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

/* Cookies: the encoding's and the compression's, with the word size 1
 * (zig-zag LEB128 counts) in bits 4-7, as V2 writes them. */
#define V2_ENCODING_COOKIE 0x1c849303u
#define V2_COMPRESSION_COOKIE 0x1c849304u
#define COOKIE_BASE(c) ((c) & ~0xf0u)
#define WORD_SIZE_V2 0x10u

/* The encoding's header: cookie, payload length, normalizing index offset,
 * significant digits (4 bytes each), lowest discernible and highest
 * trackable values, and the integer-to-double ratio (8 bytes each), all
 * big-endian. The compression's header: cookie and deflated length. */
#define ENCODING_HEADER 40
#define COMPRESSION_HEADER 8

/* Nine bytes of LEB128 hold 64 bits: eight of 7 bits, the last of 8. */
#define LEB128_MAX 9

/* A decoded histogram may have at most this many buckets (HdrHistogram with
 * 5 significant digits over the whole 64-bit range has about 12 million);
 * its encoded payload at most LEB128_MAX bytes for each. */
#define DECODE_MAX_BUCKETS (1u << 24)

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* ---- zig-zag LEB128 ------------------------------------------------------------------- */

/* Zig-zag maps 0, -1, 1, -2 ... to 0, 1, 2, 3 ..., so a run of zeros (a
 * negative count) costs as little as a small count. */
static size_t leb128_put(uint8_t *p, int64_t signed_value)
{
    uint64_t v = ((uint64_t)signed_value << 1) ^ (uint64_t)(signed_value >> 63);
    size_t n = 0;
    while (n < LEB128_MAX - 1 && v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v; /* the ninth byte carries all of its 8 bits */
    return n;
}

/* Read one value from p[0..avail): the bytes used, or 0 if it runs past
 * the end. */
static size_t leb128_get(const uint8_t *p, size_t avail, int64_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    for (;;) {
        if (n == avail)
            return 0;
        uint8_t b = p[n];
        if (n == LEB128_MAX - 1) {
            v |= (uint64_t)b << 56;
            n++;
            break;
        }
        v |= (uint64_t)(b & 0x7f) << (7 * n);
        n++;
        if ((b & 0x80) == 0)
            break;
    }
    *out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    return n;
}

/* ---- base64 ------------------------------------------------------------------------------ */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64_encode(const uint8_t *in, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < n ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(B64, c) : NULL;
    return p != NULL ? (int)(p - B64) : -1;
}

/* Strict: groups of four, '=' only as padding at the very end. Returns
 * the malloc'd bytes and their count, or NULL. */
static uint8_t *base64_decode(const char *in, size_t n, size_t *out_len)
{
    if (n == 0 || n % 4 != 0)
        return NULL;
    uint8_t *out = malloc(n / 4 * 3);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            bool last = i + 4 == n;
            if (last && j >= 2 && in[i + j] == '=' && (j == 3 || in[i + 3] == '=')) {
                v[j] = 0;
                pad++;
            } else if ((v[j] = b64_value(in[i + j])) < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[k++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[k++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[k++] = (uint8_t)w;
    }
    *out_len = k;
    return out;
}

/* ---- encoding ----------------------------------------------------------------------------- */

char *hdrlog_encode(const struct hist *h)
{
    /* Counts up to the last non-empty bucket, as zig-zag LEB128, each run
     * of empty buckets as one negative number. */
    struct hist_iter it;
    struct hist_bucket b;
    size_t last = 0;
    bool any = false;
    hist_iter_init(&it, h);
    while (hist_iter_next(&it, &b)) {
        last = hist_bucket_index(b.lo);
        any = true;
    }
    size_t limit = any ? last + 1 : 0;
    uint8_t *enc = malloc(ENCODING_HEADER + LEB128_MAX * (limit + 1));
    if (enc == NULL)
        return NULL;
    size_t n = ENCODING_HEADER;
    for (size_t i = 0; i < limit;) {
        uint64_t c = atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        i++;
        if (c != 0) {
            n += leb128_put(enc + n, c > INT64_MAX ? INT64_MAX : (int64_t)c);
            continue;
        }
        int64_t zeros = 1;
        while (i < limit && atomic_load_explicit(&h->counts[i], memory_order_relaxed) == 0) {
            zeros++;
            i++;
        }
        n += leb128_put(enc + n, -zeros);
    }
    put32(enc, V2_ENCODING_COOKIE | WORD_SIZE_V2);
    put32(enc + 4, (uint32_t)(n - ENCODING_HEADER));
    put32(enc + 8, 0); /* normalizing index offset: none */
    put32(enc + 12, HDRLOG_SIGNIFICANT_DIGITS);
    put64(enc + 16, 1); /* lowest discernible value */
    put64(enc + 24, HIST_MAX_VALUE);
    double ratio = 1.0;
    uint64_t ratio_bits;
    memcpy(&ratio_bits, &ratio, sizeof ratio_bits);
    put64(enc + 32, ratio_bits);

    uLongf zlen = compressBound((uLong)n);
    uint8_t *out = malloc(COMPRESSION_HEADER + zlen);
    char *text = NULL;
    if (out != NULL && compress(out + COMPRESSION_HEADER, &zlen, enc, (uLong)n) == Z_OK) {
        put32(out, V2_COMPRESSION_COOKIE | WORD_SIZE_V2);
        put32(out + 4, (uint32_t)zlen);
        text = base64_encode(out, COMPRESSION_HEADER + zlen);
    }
    free(out);
    free(enc);
    return text;
}

/* ---- decoding ----------------------------------------------------------------------------- */

/* The bucket layout of an encoded histogram (HdrHistogram's parameters). */
struct layout {
    unsigned unit_magnitude;     /* log2 of the lowest discernible value */
    unsigned half_magnitude;     /* log2 of half the sub-buckets per power of two */
    size_t nbuckets;             /* indexes whose bounds fit in 64 bits */
};

static int layout_of(uint32_t digits, uint64_t lowest, uint64_t highest, struct layout *l,
                     const char **why)
{
    if (digits > 5 || lowest < 1 || highest < 2 * lowest) {
        *why = "the histogram's parameters are out of range";
        return -EINVAL;
    }
    l->unit_magnitude = 63u - (unsigned)__builtin_clzll(lowest);
    /* 2 x 10^digits values at unit resolution need this many sub-buckets. */
    uint64_t single = 2;
    for (uint32_t i = 0; i < digits; i++)
        single *= 10;
    unsigned count_magnitude = 64u - (unsigned)__builtin_clzll(single - 1);
    l->half_magnitude = (count_magnitude > 1 ? count_magnitude : 1) - 1;
    if (l->half_magnitude + l->unit_magnitude > 62) {
        *why = "the histogram's parameters are out of range";
        return -EINVAL;
    }
    /* Buckets of index i start at value_of(i); stop where that would need
     * more than 64 bits. */
    unsigned max_shift = 63u - l->half_magnitude - l->unit_magnitude;
    l->nbuckets = ((size_t)max_shift + 2) << l->half_magnitude;
    if (l->nbuckets > DECODE_MAX_BUCKETS)
        l->nbuckets = DECODE_MAX_BUCKETS;
    return 0;
}

/* The lowest value of bucket i, and its width, in that layout. */
static uint64_t layout_lo(const struct layout *l, size_t i, uint64_t *width)
{
    size_t half = (size_t)1 << l->half_magnitude;
    long bucket = (long)(i >> l->half_magnitude) - 1;
    uint64_t sub = (i & (half - 1)) + half;
    if (bucket < 0) {
        sub -= half;
        bucket = 0;
    }
    unsigned shift = (unsigned)bucket + l->unit_magnitude;
    *width = (uint64_t)1 << shift;
    return sub << shift;
}

/* Inflate in[0..n) into out: want bytes exactly, and the stream must end
 * there (whole), or just the first want bytes (to read the header, which
 * says how long the payload is). 0, -EINVAL or -ENOMEM. */
static int inflate_into(const uint8_t *in, size_t n, uint8_t *out, size_t want, bool whole)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)want;
    int rc = inflate(&z, whole ? Z_FINISH : Z_SYNC_FLUSH);
    bool ok = (rc == Z_STREAM_END || (!whole && rc == Z_OK)) && z.avail_out == 0;
    inflateEnd(&z);
    return ok ? 0 : -EINVAL;
}

/* Walk the payload's counts: each (value, count) of a non-empty bucket goes
 * to add() when h is not NULL; with h NULL it only checks that every bucket
 * fits in one of struct hist's. */
static int apply_counts(const struct layout *l, const uint8_t *p, size_t n, struct hist *h,
                        double scale, const char **why)
{
    size_t i = 0;
    for (size_t k = 0; k < n;) {
        int64_t v;
        size_t used = leb128_get(p + k, n - k, &v);
        if (used == 0) {
            *why = "a count runs past the end of the histogram";
            return -EINVAL;
        }
        k += used;
        if (v < 0) {
            if (v == INT64_MIN || (uint64_t)-v > l->nbuckets - i) {
                *why = "a run of empty buckets goes past the histogram's end";
                return -EINVAL;
            }
            i += (size_t)-v;
            continue;
        }
        if (i >= l->nbuckets) {
            *why = "more buckets than the histogram has";
            return -EINVAL;
        }
        uint64_t width, lo = layout_lo(l, i, &width);
        i++;
        if (v == 0)
            continue;
        uint64_t hi = lo + (width - 1);
        if (h != NULL && scale == 1) {
            /* At the middle of the bucket, as the histogram reports a bucket
             * (and lands in the same one of struct hist's). */
            hist_record_n(h, lo + (width - 1) / 2, (uint64_t)v);
        } else if (h != NULL) {
            double x = ((double)lo + (double)(width - 1) / 2) * scale;
            hist_record_n(h, x < (double)HIST_MAX_VALUE ? (uint64_t)x : HIST_MAX_VALUE, (uint64_t)v);
        } else if (scale == 1 && lo <= HIST_MAX_VALUE &&
                   hist_bucket_index(lo) != hist_bucket_index(hi)) {
            *why = "its buckets are wider than tcpmsg's (fewer than 2 significant digits, "
                   "or a lowest discernible value above 1): it cannot be added exactly";
            return -ERANGE;
        }
    }
    return 0;
}

int hdrlog_decode_add(struct hist *h, const char *b64, size_t len, const char **why)
{
    return hdrlog_decode_add_scaled(h, b64, len, 1, why);
}

int hdrlog_decode_add_scaled(struct hist *h, const char *b64, size_t len, double scale,
                             const char **why)
{
    const char *ignored;
    if (why == NULL)
        why = &ignored;
    size_t n;
    uint8_t *raw = base64_decode(b64, len, &n);
    if (raw == NULL) {
        *why = "not base64 (or no memory for it)";
        return -EINVAL;
    }
    int rc = -EINVAL;
    uint8_t head[ENCODING_HEADER];
    uint8_t *enc = NULL;
    if (n < COMPRESSION_HEADER || get32(raw) != (V2_COMPRESSION_COOKIE | WORD_SIZE_V2)) {
        *why = n >= COMPRESSION_HEADER && COOKIE_BASE(get32(raw)) != V2_COMPRESSION_COOKIE &&
                       (get32(raw) & 0xffff0000u) == 0x1c840000u
                   ? "an older HdrHistogram encoding (V0 or V1): only V2 is read"
                   : "not a compressed HdrHistogram (unknown cookie)";
        goto out;
    }
    size_t zlen = get32(raw + 4);
    if (zlen > n - COMPRESSION_HEADER) {
        *why = "the compressed histogram is cut short";
        goto out;
    }
    if ((rc = inflate_into(raw + COMPRESSION_HEADER, zlen, head, ENCODING_HEADER, false)) < 0 ||
        get32(head) != (V2_ENCODING_COOKIE | WORD_SIZE_V2)) {
        *why = rc == -ENOMEM ? "out of memory" : "not a V2 histogram encoding";
        rc = rc == -ENOMEM ? rc : -EINVAL;
        goto out;
    }
    /* The normalizing index offset (head + 8) and the conversion ratio
     * (head + 32) matter only to a DoubleHistogram, which has a cookie of
     * its own; writers of integer histograms put 0 or 1 there. */
    size_t payload = get32(head + 4);
    struct layout l;
    if ((rc = layout_of(get32(head + 12), get64(head + 16), get64(head + 24), &l, why)) < 0)
        goto out;
    /* zlib expands at most about 1032 to 1: a longer payload cannot come
     * out of zlen bytes, and is not worth allocating for. */
    if (payload > (size_t)LEB128_MAX * l.nbuckets || payload > zlen * 1032 + 1024) {
        *why = "the payload is longer than any histogram of that size";
        rc = -EINVAL;
        goto out;
    }
    if ((enc = malloc(ENCODING_HEADER + payload)) == NULL) {
        *why = "out of memory";
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = inflate_into(raw + COMPRESSION_HEADER, zlen, enc, ENCODING_HEADER + payload,
                          true)) < 0) {
        *why = rc == -ENOMEM ? "out of memory" : "the deflate stream is corrupt or of another length";
        goto out;
    }
    /* Check everything first, so that a histogram refused halfway adds
     * nothing; then add. */
    if ((rc = apply_counts(&l, enc + ENCODING_HEADER, payload, NULL, scale, why)) == 0)
        rc = apply_counts(&l, enc + ENCODING_HEADER, payload, h, scale, why);
out:
    free(enc);
    free(raw);
    return rc;
}

/* ---- logs ------------------------------------------------------------------------------------ */

int hdrlog_write_header(FILE *f, double start_s, const char *unit)
{
    time_t t = (time_t)start_s;
    struct tm tm;
    char when[64] = "";
    if (gmtime_r(&t, &tm) != NULL)
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (fprintf(f,
                "#[Histogram log format version 1.3]\n"
                "#[tcpmsg: values in %s]\n"
                "#[StartTime: %.3f (seconds since epoch), %s]\n"
                "#[BaseTime: %.3f (seconds since epoch)]\n"
                "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\","
                "\"Interval_Compressed_Histogram\"\n",
                unit, start_s, when, start_s) < 0)
        return -errno;
    return 0;
}

int hdrlog_write_interval(FILE *f, const char *tag, double start_s, double length_s,
                          const struct hist *h, double max_divisor)
{
    char *b64 = hdrlog_encode(h);
    if (b64 == NULL)
        return -ENOMEM;
    int decimals = max_divisor > 1 ? (int)ceil(log10(max_divisor) - 1e-9) : 0;
    int rc = fprintf(f, "%s%s%s%.3f,%.3f,%.*f,%s\n", tag != NULL ? "Tag=" : "",
                     tag != NULL ? tag : "", tag != NULL ? "," : "", start_s, length_s, decimals,
                     (double)hist_max(h) / max_divisor, b64);
    free(b64);
    return rc < 0 ? -errno : 0;
}

void hdrlog_reader_init(struct hdrlog_reader *r, FILE *f, const char *path)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->path = path;
    r->start_s = NAN;
    r->base_s = NAN;
    r->scale = 1;
}

void hdrlog_reader_free(struct hdrlog_reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

static int reader_fail(struct hdrlog_reader *r, int rc, const char *why)
{
    snprintf(r->error, sizeof r->error, "%s:%u: %s", r->path, r->line, why);
    return rc;
}

/* A number that must be all there is between two commas. */
static bool field_number(const char **p, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(*p, &end);
    if (end == *p || *end != ',' || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    *p = end + 1;
    return true;
}

/* "#[StartTime: 123.456 ..." and "#[BaseTime: ...": the number after key. */
static bool header_time(const char *line, const char *key, double *out)
{
    size_t kl = strlen(key);
    if (strncmp(line, key, kl) != 0)
        return false;
    char *end;
    double v = strtod(line + kl, &end);
    if (end != line + kl && isfinite(v))
        *out = v;
    return true;
}

/* Nanoseconds per unit; 0 for a unit this does not know. */
static double unit_scale(const char *unit)
{
    static const struct {
        const char *name;
        double ns;
    } units[] = { { "nanoseconds", 1 }, { "microseconds", 1e3 }, { "milliseconds", 1e6 },
                  { "seconds", 1e9 } };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(unit, units[i].name) == 0)
            return units[i].ns;
    return 0;
}

int hdrlog_read_interval(struct hdrlog_reader *r, struct hdrlog_interval *iv, struct hist *h)
{
    ssize_t n;
    while ((n = getline(&r->buf, &r->cap, r->f)) >= 0) {
        r->line++;
        char *line = r->buf;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (line[0] == '#') {
            static const char unit_key[] = "#[tcpmsg: values in ";
            if (strncmp(line, unit_key, sizeof unit_key - 1) == 0) {
                snprintf(r->unit, sizeof r->unit, "%.*s",
                         (int)strcspn(line + sizeof unit_key - 1, "]"), line + sizeof unit_key - 1);
                if ((r->scale = unit_scale(r->unit)) == 0)
                    return reader_fail(r, -EINVAL, "an unknown unit (not nanoseconds, "
                                                   "microseconds, milliseconds or seconds)");
            } else if (!header_time(line, "#[StartTime: ", &r->start_s))
                header_time(line, "#[BaseTime: ", &r->base_s);
            continue;
        }
        if (line[0] == '"') /* the legend */
            continue;
        memset(iv, 0, sizeof *iv);
        const char *p = line;
        if (strncmp(p, "Tag=", 4) == 0) {
            size_t tl = strcspn(p + 4, ",");
            if (p[4 + tl] != ',' || tl >= sizeof iv->tag)
                return reader_fail(r, -EINVAL, "a Tag= that does not end in a comma, or too long");
            memcpy(iv->tag, p + 4, tl);
            p += 4 + tl + 1;
        }
        if (!field_number(&p, &iv->start_s) || !field_number(&p, &iv->length_s) ||
            !field_number(&p, &iv->max))
            return reader_fail(r, -EINVAL, "not an interval line (start,length,max,histogram)");
        /* Starts are relative to the base time when the log has one; a log
         * with a start time only is relative when its starts are small
         * (HdrHistogram's readers guess the same way). */
        double base = !isnan(r->base_s) ? r->base_s
                      : !isnan(r->start_s) && iv->start_s < r->start_s / 2 ? r->start_s
                                                                           : 0;
        iv->start_s += base;
        const char *why = NULL;
        int rc = hdrlog_decode_add_scaled(h, p, strlen(p), r->scale, &why);
        if (rc < 0)
            return reader_fail(r, rc, why);
        return 1;
    }
    if (ferror(r->f))
        return reader_fail(r, -EIO, "read error");
    return 0;
}
