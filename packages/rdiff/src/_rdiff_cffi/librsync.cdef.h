/* The part of librsync.h (2.3.x) that rdiff calls. API mode: "..." lets the C compiler fill in
   enum values and struct layouts from the real header, so nothing here can drift from it. */

typedef uint8_t rs_byte_t;
typedef intmax_t rs_long_t;
typedef int... time_t;

typedef enum {
    RS_DELTA_MAGIC, RS_MD4_SIG_MAGIC, RS_BLAKE2_SIG_MAGIC, RS_RK_MD4_SIG_MAGIC,
    RS_RK_BLAKE2_SIG_MAGIC, ...
} rs_magic_number;

typedef enum {
    RS_LOG_EMERG, RS_LOG_ALERT, RS_LOG_CRIT, RS_LOG_ERR, RS_LOG_WARNING, RS_LOG_NOTICE,
    RS_LOG_INFO, RS_LOG_DEBUG, ...
} rs_loglevel;

typedef enum rs_result {
    RS_DONE, RS_BLOCKED, RS_RUNNING, RS_TEST_SKIPPED, RS_IO_ERROR, RS_SYNTAX_ERROR,
    RS_MEM_ERROR, RS_INPUT_ENDED, RS_BAD_MAGIC, RS_UNIMPLEMENTED, RS_CORRUPT,
    RS_INTERNAL_ERROR, RS_PARAM_ERROR, ...
} rs_result;

typedef struct rs_stats {
    char const *op;
    int lit_cmds;
    rs_long_t lit_bytes;
    rs_long_t lit_cmdbytes;
    rs_long_t copy_cmds, copy_bytes, copy_cmdbytes;
    rs_long_t sig_cmds, sig_bytes;
    int false_matches;
    rs_long_t sig_blocks;
    size_t block_len;
    rs_long_t in_bytes;
    rs_long_t out_bytes;
    time_t start, end;
    ...;
} rs_stats_t;

typedef struct rs_buffers_s {
    char *next_in;
    size_t avail_in;
    int eof_in;
    char *next_out;
    size_t avail_out;
    ...;
} rs_buffers_t;

typedef struct rs_job rs_job_t;
typedef struct rs_signature rs_signature_t;

typedef void rs_trace_fn_t(rs_loglevel level, char const *msg);
typedef rs_result rs_copy_cb(void *opaque, rs_long_t pos, size_t *len, void **buf);

extern char const rs_librsync_version[];

void rs_trace_set_level(rs_loglevel level);
void rs_trace_to(rs_trace_fn_t *);
int rs_supports_trace(void);
char const *rs_strerror(rs_result r);
int rs_log_stats(rs_stats_t const *stats);
void rs_signature_log_stats(rs_signature_t const *sig);
void rs_free_sumset(rs_signature_t *);

rs_result rs_job_iter(rs_job_t *job, rs_buffers_t *buffers);
const rs_stats_t *rs_job_statistics(rs_job_t *job);
rs_result rs_job_free(rs_job_t *);

rs_result rs_sig_args(rs_long_t old_fsize, rs_magic_number *magic, size_t *block_len,
                      size_t *strong_len);
rs_job_t *rs_sig_begin(size_t block_len, size_t strong_len, rs_magic_number sig_magic);
rs_job_t *rs_delta_begin(rs_signature_t *);
rs_job_t *rs_loadsig_begin(rs_signature_t **);
rs_result rs_build_hash_table(rs_signature_t *sums);
rs_job_t *rs_patch_begin(rs_copy_cb *copy_cb, void *copy_arg);

/* Ours (build.py): a whole-file patch without Python callbacks; free() its output. */
#define RDIFF_TOO_BIG ...
#define RDIFF_BASIS_SHORT ...
int rdiff_patch_whole(int basis_fd, const char *basis_data, size_t basis_len,
                      const char *delta, size_t delta_len, size_t size_hint, size_t limit,
                      char **out, size_t *out_len);
void free(void *);

/* Python callbacks: exceptions inside them must never reach C (see rdiff._binding). */
extern "Python" rs_result _rdiff_copy_cb(void *, rs_long_t, size_t *, void **);
extern "Python" void _rdiff_trace_cb(rs_loglevel, char const *);
