/*
 * nccl_standin.c -- clusterproof's CPU stand-in for NVIDIA nccl-tests (sandbox only).
 *
 * One source for every binary: the collective is chosen by the basename of argv[0]
 * (all_reduce_perf, all_gather_perf, reduce_scatter_perf, alltoall_perf, sendrecv_perf,
 * broadcast_perf), or by -DSTANDIN_COLLECTIVE='"all_reduce_perf"' when argv[0] says nothing.
 * The collective runs with MPI over TCP on CPUs, and the output follows nccl-tests v2.19
 * (src/util.cu) line for line so the same parser reads both; the FIRST line says that it is
 * a stand-in, so no report can mistake these numbers for GPU numbers.
 *
 * Flags as nccl-tests: -b -e -i -f -n -m -w -c -a -r -o sum -d float -g 1 -T are implemented;
 * every other nccl-tests flag (-t -N -p -I -K -z -y -G -C -R -x -D -V -J -S -M -u) is accepted
 * with its argument and ignored. Sizes take K/M/G suffixes (binary units).
 * Data are real: with -c N every rank fills its buffers with rank-dependent values and checks
 * the result element by element; #wrong counts real mismatches (summed over ranks).
 * Exit status as nccl-tests: 0 success, 6 invalid usage, 4 timeout (-T), 7 wrong results
 * (or average busbw below 0.9 x NCCL_TESTS_MIN_BW).
 *
 * Test hook: CLUSTERPROOF_STANDIN_CORRUPT_RANK=<r> makes rank r damage its results after every
 * validation collective, so that "#wrong == 0" checks can be seen to fail. Node faults: a file
 * /tmp/clusterproof-standin-fault (the node's private /tmp) saying "crash" or "corrupt" makes every rank on
 * that node fail as a broken NCCL does, or damage its results.
 * NCCL_TESTS_SPLIT ("MOD 8", "DIV n", "AND/OR/XOR mask") or NCCL_TESTS_SPLIT_MASK splits the ranks into groups
 * that run their own communicator at the same time; busbw uses the group size, the Group column shows the
 * color, times are averaged over all ranks (as nccl-tests does).
 *
 * Sandbox faults: a file STATE_DIR/<hostname>/standin_faults next to the binary's STATE_DIR/bin holds
 * `flaky P` (with probability P per run, one validation of a rank on this node is damaged, as an
 * intermittent bad link or GPU would) and/or `slow F` (every timed iteration on this node takes F
 * times as long, so busbw through it falls to 1/F; with `slow_from B` only at sizes >= B bytes, a dip). `clusterproof sandbox fault flaky|slow-node` writes it.
 *
 * Build: mpicc -O2 -o all_reduce_perf nccl_standin.c   (then symlink the other names to it)
 */
#include <mpi.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define STANDIN_LINE "# clusterproof CPU stand-in for nccl-tests (not NVIDIA nccl-tests; numbers are MPI over TCP on CPUs)"
#define EXIT_INVALID_USAGE 6
#define EXIT_TIMEOUT 4
#define EXIT_WRONG_RESULTS 7
#define MAX_LINE 2048

extern char **environ;

typedef enum { ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, ALLTOALL, SENDRECV, BROADCAST } coll_t;

static const struct { const char *name; coll_t id; } COLLECTIVES[] = {
    {"all_reduce_perf", ALL_REDUCE}, {"all_gather_perf", ALL_GATHER},
    {"reduce_scatter_perf", REDUCE_SCATTER}, {"alltoall_perf", ALLTOALL},
    {"sendrecv_perf", SENDRECV}, {"broadcast_perf", BROADCAST},
};
#define N_COLLECTIVES (sizeof COLLECTIVES / sizeof COLLECTIVES[0])

/* Options (nccl-tests defaults since v2.16.8). */
static size_t minBytes = 32 << 20, maxBytes = 32 << 20, stepBytes = 1 << 20, stepFactor = 1;
static int nGpus = 1, iters = 20, aggIters = 1, warmupIters = 1, datacheck = 1, average = 1, root = 0;
static int timeoutSec = 0;

/* rank/nranks: this rank's place in its NCCL_TESTS_SPLIT group (the whole world without a split), which is
 * what the data and busbw use, as in nccl-tests; worldRank/worldSize: for timing, printing and validation. */
static int rank, nranks, worldRank, worldSize, color, corruptRank = -1;
static MPI_Comm comm;
static double flakyP = 0.0, slowFactor = 1.0, slowFrom = 0.0;
static long checkCount = 0, flakyTarget = -1;
static char host[256];

/* Per-size buffer geometry, in floats (nccl-tests' getCollByteCount). */
typedef struct { size_t send, recv, param; } counts_t;

static double parsesize(const char *value) {
  double size; char lit[2]; long long units;
  int n = sscanf(value, "%lf %1s", &size, lit);
  if (n == 2) {
    switch (lit[0]) {
      case 'G': case 'g': units = 1024LL * 1024 * 1024; break;
      case 'M': case 'm': units = 1024LL * 1024; break;
      case 'K': case 'k': units = 1024; break;
      default: return -1.0;
    }
  } else if (n == 1) {
    units = 1;
  } else {
    return -1.0;
  }
  return size * units;
}

/* nccl-tests' getFloatStr: fit a number into `width` characters. */
static void floatStr(double value, int width, char *str) {
  int power = 0;
  for (uint64_t val = 1; value >= val; val *= 10) power++;
  if (power < width - 2) sprintf(str, "%*.2f", width, value);
  else if (power < width - 1) sprintf(str, "%*.1f", width, value);
  else if (power < width + 1) sprintf(str, "%*.0f", width, value);
  else sprintf(str, "%*.1e", width, value);
}

static counts_t geometry(coll_t c, size_t count) {
  counts_t g;
  size_t per = count / (size_t)nranks;
  switch (c) {
    case ALL_GATHER: g.send = per; g.recv = per * nranks; g.param = per; break;
    case REDUCE_SCATTER: g.send = per * nranks; g.recv = per; g.param = per; break;
    case ALLTOALL: g.send = per * nranks; g.recv = per * nranks; g.param = per; break;
    default: g.send = count; g.recv = count; g.param = count; break;
  }
  return g;
}

/* algbw bytes and busbw factor (nccl-tests' *GetBw, doc/PERFORMANCE.md). */
static void bandwidth(coll_t c, size_t param, double sec, double *algBw, double *busBw) {
  double bytes = (double)param * sizeof(float), factor = 1.0, n = nranks;
  switch (c) {
    case ALL_REDUCE: factor = 2.0 * (n - 1) / n; break;
    case ALL_GATHER: case REDUCE_SCATTER: case ALLTOALL: bytes *= n; factor = (n - 1) / n; break;
    case SENDRECV: case BROADCAST: break;
  }
  *algBw = bytes / 1.0E9 / sec;
  *busBw = *algBw * factor;
}

/* Input element i of rank r: small integers, so float sums over thousands of ranks stay exact. */
static int repSeed;
static float rankPart(int r) { return (float)(1 + r % 16); }
static float eltPart(size_t i) { return (float)((i + (size_t)repSeed) % 31); }
static float inputValue(int r, size_t i) { return rankPart(r) + eltPart(i); }
static double sumRankParts(void) {
  double s = 0;
  for (int r = 0; r < nranks; r++) s += rankPart(r);
  return s;
}

static void fill(float *buf, size_t n, int r, size_t offset) {
  for (size_t i = 0; i < n; i++) buf[i] = inputValue(r, offset + i);
}

/* Run one collective. `s` and `r` are the out-of-place buffers; in place uses `r` only. */
static void runColl(coll_t c, int inPlace, float *s, float *r, counts_t g) {
  int next = (rank + 1) % nranks, prev = (rank - 1 + nranks) % nranks;
  switch (c) {
    case ALL_REDUCE:
      MPI_Allreduce(inPlace ? MPI_IN_PLACE : s, r, (int)g.param, MPI_FLOAT, MPI_SUM, comm);
      break;
    case ALL_GATHER:
      if (inPlace) MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, (int)g.param, MPI_FLOAT, comm);
      else MPI_Allgather(s, (int)g.param, MPI_FLOAT, r, (int)g.param, MPI_FLOAT, comm);
      break;
    case REDUCE_SCATTER:
      MPI_Reduce_scatter_block(inPlace ? MPI_IN_PLACE : s, r, (int)g.param, MPI_FLOAT, MPI_SUM, comm);
      break;
    case ALLTOALL:
      if (inPlace) MPI_Alltoall(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, r, (int)g.param, MPI_FLOAT, comm);
      else MPI_Alltoall(s, (int)g.param, MPI_FLOAT, r, (int)g.param, MPI_FLOAT, comm);
      break;
    case SENDRECV:
      if (inPlace) MPI_Sendrecv_replace(r, (int)g.param, MPI_FLOAT, next, 0, prev, 0, comm, MPI_STATUS_IGNORE);
      else MPI_Sendrecv(s, (int)g.param, MPI_FLOAT, next, 0, r, (int)g.param, MPI_FLOAT, prev, 0, comm, MPI_STATUS_IGNORE);
      break;
    case BROADCAST:
      /* MPI_Bcast has one buffer: out of place, the root first copies its send buffer over. */
      if (!inPlace && rank == root) memcpy(r, s, g.param * sizeof(float));
      MPI_Bcast(r, (int)g.param, MPI_FLOAT, root, comm);
      break;
  }
}

/* Fill the inputs of one validation run. */
static void initData(coll_t c, int inPlace, float *s, float *r, counts_t g) {
  float *in = inPlace ? r : s;
  memset(r, 0, g.recv * sizeof(float));
  switch (c) {
    case ALL_GATHER: fill(inPlace ? r + (size_t)rank * g.param : s, g.param, rank, 0); break;
    case BROADCAST: if (rank == root) fill(in, g.param, rank, 0); break;
    default: fill(in, g.send, rank, 0); break;
  }
}

/* Expected result element i on this rank. */
static float expected(coll_t c, size_t i, counts_t g, double rankSum) {
  size_t p = g.param;
  switch (c) {
    case ALL_REDUCE: return (float)(rankSum + nranks * (double)eltPart(i));
    case ALL_GATHER: return inputValue((int)(i / p), i % p);
    case REDUCE_SCATTER: return (float)(rankSum + nranks * (double)eltPart((size_t)rank * p + i));
    case ALLTOALL: return inputValue((int)(i / p), (size_t)rank * p + i % p);
    case SENDRECV: return inputValue((rank - 1 + nranks) % nranks, i);
    case BROADCAST: return inputValue(root, i);
  }
  return 0;
}

static size_t resultCount(coll_t c, counts_t g) { return c == REDUCE_SCATTER ? g.param : g.recv; }

static long long checkData(coll_t c, float *r, counts_t g) {
  size_t n = resultCount(c, g);
  if (worldRank == corruptRank || checkCount == flakyTarget)  /* damage a few results the way a bad link would */
    for (size_t i = 0; i < n; i += 4096) r[i] += 1.0f;
  checkCount++;
  double rankSum = sumRankParts();
  long long wrong = 0;
  for (size_t i = 0; i < n; i++)
    if (r[i] != expected(c, i, g, rankSum)) wrong++;
  return wrong;
}

static double reduceTime(double dt) {
  double out = dt;
  if (average == 0) {
    MPI_Bcast(&out, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  } else {
    MPI_Op op = average == 2 ? MPI_MIN : average == 3 ? MPI_MAX : MPI_SUM;
    MPI_Allreduce(&dt, &out, 1, MPI_DOUBLE, op, MPI_COMM_WORLD);
    if (average == 1) out /= worldSize;
  }
  return out;
}

/* Time one placement and validate it; prints the row's body and returns #wrong. */
static long long benchTime(coll_t c, int inPlace, float *s, float *r, counts_t g, double *busBwOut) {
  if (datacheck) initData(c, inPlace, s, r, g);
  runColl(c, inPlace, s, r, g);  /* sync run, as nccl-tests does before timing */
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  for (int it = 0; it < iters * aggIters; it++) {
    double i0 = MPI_Wtime();
    runColl(c, inPlace, s, r, g);
    if (slowFactor > 1.0 && (double)(g.param * sizeof(float)) >= slowFrom) usleep((useconds_t)((MPI_Wtime() - i0) * (slowFactor - 1.0) * 1e6));
  }
  double sec = reduceTime((MPI_Wtime() - t0) / (iters * aggIters));
  double algBw, busBw;
  bandwidth(c, g.param, sec, &algBw, &busBw);
  MPI_Barrier(MPI_COMM_WORLD);

  long long wrong = 0;
  for (int k = 0; k < datacheck; k++) {
    repSeed++;
    initData(c, inPlace, s, r, g);
    runColl(c, inPlace, s, r, g);
    long long mine = checkData(c, r, g);
    MPI_Allreduce(&mine, &wrong, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (wrong) break;
  }
  /* nccl-tests does not validate in-place alltoall and prints N/A there. */
  int report = datacheck && !(c == ALLTOALL && inPlace);
  if (worldRank == 0) {
    char t[16], a[16], b[16];
    floatStr(sec * 1.0E6, 7, t);
    floatStr(algBw, 6, a);
    floatStr(busBw, 6, b);
    if (report) printf("  %7s  %6s  %6s  %6g", t, a, b, (double)wrong);
    else printf("  %7s  %6s  %6s    N/A", t, a, b);
  }
  *busBwOut = busBw;
  return report ? wrong : 0;
}

/* Read STATE_DIR/<host>/standin_faults (see the header); a missing file means no fault. */
static void readFaults(size_t nChecks) {
  char exe[1024], path[1400], key[32];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = 0;
  for (int up = 0; up < 2; up++) { char *slash = strrchr(exe, '/'); if (!slash) return; *slash = 0; }
  snprintf(path, sizeof path, "%s/%s/standin_faults", exe, host);
  FILE *f = fopen(path, "r");
  if (!f) return;
  double v;
  while (fscanf(f, "%31s %lf", key, &v) == 2) {
    if (!strcmp(key, "flaky")) flakyP = v;
    else if (!strcmp(key, "slow")) slowFactor = v;
    else if (!strcmp(key, "slow_from")) slowFrom = v;
  }
  fclose(f);
  srand48((long)time(NULL) ^ ((long)getpid() << 8) ^ rank);
  if (flakyP > 0 && nChecks > 0 && drand48() < flakyP) flakyTarget = (long)(drand48() * (double)nChecks);
}

static void onTimeout(int sig) {
  (void)sig;
  char msg[400];
  int n = snprintf(msg, sizeof msg, "%s: Test timeout (%ds) nccl_standin.c:%d\n", host, timeoutSec, __LINE__);
  if (n > 0) (void)!write(STDOUT_FILENO, msg, (size_t)n);
  _exit(EXIT_TIMEOUT);
}

/* NCCL_DEBUG=INFO: echo the NCCL_* variables this rank received, in NCCL's ENV line shape, so a
 * harness can check that `mpirun -x NCCL_IB_GID_INDEX=5` reached every rank. Nothing else is
 * printed: the stand-in has no transport to prove. */
static void echoNcclEnv(void) {
  const char *dbg = getenv("NCCL_DEBUG");
  if (!dbg || (strcasecmp(dbg, "INFO") && strcasecmp(dbg, "TRACE"))) return;
  FILE *out = stdout;
  const char *file = getenv("NCCL_DEBUG_FILE");
  if (file && *file) {  /* %h = hostname, %p = pid, as NCCL expands them */
    char path[1024]; size_t k = 0;
    for (const char *p = file; *p && k < sizeof path - 32; p++) {
      if (p[0] == '%' && p[1] == 'h') { k += (size_t)snprintf(path + k, sizeof path - k, "%s", host); p++; }
      else if (p[0] == '%' && p[1] == 'p') { k += (size_t)snprintf(path + k, sizeof path - k, "%d", (int)getpid()); p++; }
      else path[k++] = *p;
    }
    path[k] = 0;
    FILE *f = fopen(path, "w");
    if (f) out = f;
  }
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq || strncmp(*e, "NCCL_", 5) || !strncmp(*e, "NCCL_DEBUG", 10)) continue;
    fprintf(out, "%s:%d:%d [0] NCCL INFO %.*s set by environment to %s.\n",
            host, (int)getpid(), (int)getpid(), (int)(eq - *e), *e, eq + 1);
  }
  if (out != stdout) fclose(out);
}

/* NCCL_TESTS_SPLIT="MOD 8" (or DIV/AND/OR/XOR, numbers in C notation), or NCCL_TESTS_SPLIT_MASK=<m> (= "AND m"):
 * the color of a rank, as nccl-tests computes it; ranks of one color run their own communicator. */
static int splitColor(int r, int *out) {
  const char *split = getenv("NCCL_TESTS_SPLIT"), *mask = getenv("NCCL_TESTS_SPLIT_MASK");
  char op[8] = "AND";
  long v = 0;
  *out = 0;
  if (split && *split) {
    char num[32];
    if (sscanf(split, "%7s %31s", op, num) != 2) return -1;
    char *end;
    v = strtol(num, &end, 0);
    if (*end) return -1;
  } else if (mask && *mask) {
    v = strtol(mask, NULL, 0);
  } else {
    return 0;
  }
  if (!strcasecmp(op, "MOD")) { if (v <= 0) return -1; *out = (int)(r % v); }
  else if (!strcasecmp(op, "DIV")) { if (v <= 0) return -1; *out = (int)(r / v); }
  else if (!strcasecmp(op, "AND")) *out = (int)(r & v);
  else if (!strcasecmp(op, "OR")) *out = (int)(r | v);
  else if (!strcasecmp(op, "XOR")) *out = (int)(r ^ v);
  else return -1;
  return 0;
}

/* A node-local sandbox fault (clusterproof sandbox fault crash-node / corrupt-node): the first word of
 * /tmp/clusterproof-standin-fault in the node's private /tmp. "crash": this rank fails as a broken NCCL does
 * (nccl-tests' NCCLCHECK message, exit 3); "corrupt": this rank damages its results like CORRUPT_RANK. */
#define NODE_FAULT_FILE "/tmp/clusterproof-standin-fault"
static void nodeFault(const char *prog) {
  FILE *f = fopen(NODE_FAULT_FILE, "r");
  char word[32] = "";
  if (!f) return;
  if (fscanf(f, "%31s", word) != 1) word[0] = 0;
  fclose(f);
  if (!strcmp(word, "crash")) {
    printf("%s: Test NCCL failure %s:%d 'unhandled system error (run with NCCL_DEBUG=INFO for details)' (sandbox fault in %s)\n",
           host, "nccl_standin.c", __LINE__, NODE_FAULT_FILE);
    printf(" .. %s pid %d: Test failure %s:%d\n", host, (int)getpid(), "nccl_standin.c", __LINE__);
    fflush(stdout);
    (void)prog;
    /* nccl-tests returns testNcclError (3) from main, without MPI_Finalize; mpirun then prints "1 process returned
     * a non-zero exit code ... the job has been aborted" (tests/data/nccl/11_...). An exit, unlike MPI_Abort, lets
     * the orted read the rank's stdout to its end before it reports the death: no line is lost, and no pause is
     * needed (MPI_Abort needed 0.5 s of it, or the failure line was lost about one run in ten). */
    exit(3);
  } else if (!strcmp(word, "corrupt")) {
    corruptRank = worldRank;
  }
}

static int usage(const char *prog, const char *why) {
  if (why) fprintf(stderr, "%s: %s\n", prog, why);
  fprintf(stderr,
          "USAGE: %s [-b minbytes] [-e maxbytes] [-i stepbytes] [-f stepfactor] [-n iters] [-m agg_iters]\n"
          "       [-w warmup_iters] [-c check] [-a average 0|1|2|3] [-r root] [-o sum] [-d float] [-g 1] [-T timeout]\n"
          "       (other nccl-tests flags are accepted and ignored)\n", prog);
  return EXIT_INVALID_USAGE;
}

int main(int argc, char **argv) {
  setlinebuf(stdout);
  const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  int found = -1;
  for (size_t k = 0; k < N_COLLECTIVES; k++)
    if (!strcmp(base, COLLECTIVES[k].name)) found = (int)k;
#ifdef STANDIN_COLLECTIVE
  if (found < 0)
    for (size_t k = 0; k < N_COLLECTIVES; k++)
      if (!strcmp(STANDIN_COLLECTIVE, COLLECTIVES[k].name)) found = (int)k;
#endif
  if (found < 0) {
    fprintf(stderr, "%s: unknown collective; run me as one of:", base);
    for (size_t k = 0; k < N_COLLECTIVES; k++) fprintf(stderr, " %s", COLLECTIVES[k].name);
    fprintf(stderr, "\n");
    return EXIT_INVALID_USAGE;
  }
  const char *prog = COLLECTIVES[found].name;
  coll_t coll = COLLECTIVES[found].id;

  static struct option longopts[] = {
      {"nthreads", required_argument, 0, 't'}, {"ngpus", required_argument, 0, 'g'},
      {"minbytes", required_argument, 0, 'b'}, {"maxbytes", required_argument, 0, 'e'},
      {"stepbytes", required_argument, 0, 'i'}, {"stepfactor", required_argument, 0, 'f'},
      {"iters", required_argument, 0, 'n'}, {"agg_iters", required_argument, 0, 'm'},
      {"warmup_iters", required_argument, 0, 'w'}, {"run_cycles", required_argument, 0, 'N'},
      {"parallel_init", required_argument, 0, 'p'}, {"per_iter_timing", required_argument, 0, 'I'},
      {"per_iter_skip", required_argument, 0, 'K'}, {"check", required_argument, 0, 'c'},
      {"op", required_argument, 0, 'o'}, {"datatype", required_argument, 0, 'd'},
      {"root", required_argument, 0, 'r'}, {"blocking", required_argument, 0, 'z'},
      {"stream_null", required_argument, 0, 'y'}, {"timeout", required_argument, 0, 'T'},
      {"cudagraph", required_argument, 0, 'G'}, {"report_cputime", required_argument, 0, 'C'},
      {"average", required_argument, 0, 'a'}, {"local_register", required_argument, 0, 'R'},
      {"cta_policy", required_argument, 0, 'x'}, {"device_implementation", required_argument, 0, 'D'},
      {"device_cta_count", required_argument, 0, 'V'}, {"output_file", required_argument, 0, 'J'},
      {"report_timestamps", required_argument, 0, 'S'}, {"memory", required_argument, 0, 'M'},
      {"unalign", required_argument, 0, 'u'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
  int c, li;
  double p;
  const char *jsonPath = NULL;
  while ((c = getopt_long(argc, argv, "t:g:b:e:i:f:n:m:w:N:p:I:K:c:o:d:r:z:y:T:hG:C:a:R:x:D:V:J:S:M:u:", longopts, &li)) != -1) {
    switch (c) {
      case 'g': nGpus = atoi(optarg); break;
      case 'b': if ((p = parsesize(optarg)) < 0) return usage(prog, "invalid size specified for 'minbytes'"); minBytes = (size_t)p; break;
      case 'e': if ((p = parsesize(optarg)) < 0) return usage(prog, "invalid size specified for 'maxbytes'"); maxBytes = (size_t)p; break;
      case 'i': if ((p = parsesize(optarg)) < 0) return usage(prog, "invalid size specified for 'stepbytes'"); stepBytes = (size_t)p; break;
      case 'f': stepFactor = strtoul(optarg, NULL, 0); break;
      case 'n': iters = atoi(optarg); break;
      case 'm': aggIters = atoi(optarg); break;
      case 'w': warmupIters = atoi(optarg); break;
      case 'c': datacheck = atoi(optarg); break;
      case 'a': average = atoi(optarg); break;
      case 'r': root = atoi(optarg); break;
      case 'T': timeoutSec = atoi(optarg); break;
      case 'J': jsonPath = optarg; break;
      case 'o': if (strcmp(optarg, "sum")) return usage(prog, "the CPU stand-in implements -o sum only"); break;
      case 'd': if (strcmp(optarg, "float")) return usage(prog, "the CPU stand-in implements -d float only"); break;
      case 'h': usage(prog, NULL); return 0;
      case '?': return usage(prog, NULL);
      default: break;  /* accepted nccl-tests flag without meaning on CPUs */
    }
  }
  if (nGpus != 1) return usage(prog, "the CPU stand-in runs one rank per process: use -g 1");
  if (iters < 1 || aggIters < 1 || warmupIters < 0 || datacheck < 0 || average < 0 || average > 3)
    return usage(prog, "-n and -m must be >= 1, -w and -c >= 0, -a 0..3");
  if (minBytes > maxBytes) {
    fprintf(stderr, "invalid sizes for 'minbytes' and 'maxbytes': %zu > %zu\n", minBytes, maxBytes);
    return EXIT_INVALID_USAGE;
  }
  if (stepFactor <= 1 && stepBytes == 0) return usage(prog, "-i 0 needs -f > 1");

  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  gethostname(host, sizeof host - 1);
  if (splitColor(worldRank, &color) != 0) {
    if (worldRank == 0) fprintf(stderr, "%s: NCCL_TESTS_SPLIT must be '<MOD|DIV|AND|OR|XOR> <number>', got '%s'\n", prog, getenv("NCCL_TESTS_SPLIT"));
    MPI_Finalize();
    return EXIT_INVALID_USAGE;
  }
  MPI_Comm_split(MPI_COMM_WORLD, color, worldRank, &comm);
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &nranks);
  nodeFault(prog);
  if (coll == BROADCAST && (root < 0 || root >= nranks)) {
    if (worldRank == 0) fprintf(stderr, "%s: -r %d is not a rank (0..%d)\n", prog, root, nranks - 1);
    MPI_Finalize();
    return EXIT_INVALID_USAGE;
  }
  const char *cr = getenv("CLUSTERPROOF_STANDIN_CORRUPT_RANK");
  if (cr && *cr) corruptRank = atoi(cr);
  if (timeoutSec > 0) { signal(SIGALRM, onTimeout); alarm((unsigned)timeoutSec); }
  size_t nSizes = 0;
  for (size_t size = minBytes; size <= maxBytes; size = stepFactor > 1 ? size * stepFactor : size + stepBytes) {
    nSizes++;
    if (size == 0 || (stepFactor <= 1 && stepBytes == 0)) break;
  }
  readFaults(datacheck ? nSizes * 2 : 0);
  echoNcclEnv();

  if (worldRank == 0) {
    printf("%s\n", STANDIN_LINE);
    if (jsonPath) printf("# skipping json output; the CPU stand-in writes text only (%s)\n", jsonPath);
    printf("# Collective test starting: %s\n", prog);
    printf("# nThread %d nGpus %d minBytes %zu maxBytes %zu step: %zu(%s) warmup iters: %d iters: %d agg iters: %d validation: %d graph: %d unalign: %d\n",
           1, nGpus, minBytes, maxBytes, stepFactor > 1 ? stepFactor : stepBytes,
           stepFactor > 1 ? "factor" : "bytes", warmupIters, iters, aggIters, datacheck, 0, 0);
    printf("#\n# Using devices\n");
  }
  char line[MAX_LINE];
  snprintf(line, sizeof line, "#  Rank %2d Group %2d Pid %6d on %10s device %2d [%04x:%02x:%02x] %s\n",
           worldRank, color, (int)getpid(), host, 0, 0, 0, 0, "CPU stand-in");
  char *lines = worldRank == 0 ? malloc((size_t)worldSize * MAX_LINE) : NULL;
  MPI_Gather(line, MAX_LINE, MPI_CHAR, lines, MAX_LINE, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (worldRank == 0) {
    for (int r = 0; r < worldSize; r++) printf("%s", lines + (size_t)r * MAX_LINE);
    free(lines);
    printf("#\n");
    printf("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          \n", "", "", "", "", "");
    printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s \n", "size", "count", "type", "redop", "root",
           "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
    printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %6s  %7s  %6s  %6s  %6s \n", "(B)", "(elements)", "", "", "",
           "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
  }

  counts_t big = geometry(coll, maxBytes / sizeof(float));
  size_t nbuf = (big.send > big.recv ? big.send : big.recv) + 1;
  float *sendbuf = malloc(nbuf * sizeof(float)), *recvbuf = malloc(nbuf * sizeof(float));
  if (!sendbuf || !recvbuf) {
    fprintf(stderr, "%s: Test failure: cannot allocate %zu bytes\n", host, 2 * nbuf * sizeof(float));
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  memset(sendbuf, 0, nbuf * sizeof(float));
  memset(recvbuf, 0, nbuf * sizeof(float));

  /* Warm-up over all sizes, doubling (nccl-tests >= v2.16.8). */
  for (size_t size = minBytes; size <= maxBytes && size > 0; size *= 2) {
    counts_t g = geometry(coll, size / sizeof(float));
    for (int w = 0; w < warmupIters; w++) runColl(coll, 0, sendbuf, recvbuf, g);
  }

  int outOfBounds = 0, bwCount = 0;
  double bwSum = 0;
  const char *redop = (coll == ALL_REDUCE || coll == REDUCE_SCATTER) ? "sum" : "none";
  for (size_t size = minBytes; size <= maxBytes; size = stepFactor > 1 ? size * stepFactor : size + stepBytes) {
    counts_t g = geometry(coll, size / sizeof(float));
    size_t shown = (g.send > g.recv ? g.send : g.recv) * sizeof(float);
    if (worldRank == 0) {
      char rootName[16];
      sprintf(rootName, "%6i", coll == BROADCAST ? root : -1);
      printf("%12zu  %12zu  %8s  %6s  %6s", shown, g.param, "float", redop, rootName);
    }
    for (int inPlace = 0; inPlace < 2; inPlace++) {
      double busBw;
      if (benchTime(coll, inPlace, sendbuf, recvbuf, g, &busBw)) outOfBounds++;
      bwSum += busBw;
      bwCount++;
    }
    if (worldRank == 0) printf("\n");
    if (size == 0 && stepFactor > 1) break;  /* -b 0 -f N would never grow */
  }

  double avgBw = bwCount ? bwSum / bwCount : 0.0;
  const char *minBwEnv = getenv("NCCL_TESTS_MIN_BW");
  double minBw = minBwEnv ? atof(minBwEnv) : -1;
  int bwFailed = minBw >= 0 && avgBw < 0.9 * minBw;
  if (worldRank == 0) {
    printf("# %-20s : %d %s\n", "Out of bounds values", outOfBounds, outOfBounds ? "FAILED" : "OK");
    printf("# %-20s : %g %s\n", "Avg bus bandwidth", avgBw, minBw < 0 ? "" : bwFailed ? "FAILED" : "OK");
    printf("#\n# Collective test concluded: %s\n#\n", prog);
  }
  free(sendbuf);
  free(recvbuf);
  MPI_Finalize();
  return (outOfBounds || bwFailed) ? EXIT_WRONG_RESULTS : 0;
}
