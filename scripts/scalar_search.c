/* A plain scalar exact seed search, the baseline `seedlm bench` is compared against
 * (docs/measurements-search.md): the straightforward per-seed pseudo-inverse. Before any block,
 * for every seed, U(s) from the LFSR and its pseudo-inverse (UᵀU)⁻¹Uᵀ by Cholesky (it depends
 * on the seed only, as the engine's tables do). Then per block and seed: the least-squares
 * coefficients t = pinv·w, the exponents e*−1, e*, e*+1 (e* the smallest at which every rounded
 * coefficient fits in [−8, 7]), coefficients clamped and rounded, and the error of each; the
 * best over all seeds wins. One thread, doubles throughout, no intrinsics.
 *
 * U(s) is read from the register's cycle, stored once, rather than stepping the register C·P
 * times per seed. The table build is reported apart (`table_seconds`), outside `blocks_per_s`.
 *
 * Build: gcc -O3 -march=native -o scalar_search scripts/scalar_search.c -lm   (or -ffast-math)
 * Run:   scalar_search C P K BLOCKS  → blocks/s and the relative MSE on N(0,1) blocks. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAXC 16
#define MAXP 8

/* Feedback taps of the project's LFSRs (src/core/lfsr.rs, the paper's Table 6), K = 2..24. */
static const uint32_t TAPS[23] = {
    0x3, 0x3, 0x3, 0x5, 0x3, 0x3, 0x1d, 0x11, 0x9, 0x5, 0x107, 0x27, 0x1007,
    0x3, 0x100b, 0x9, 0x81, 0x27, 0x9, 0x5, 0x3, 0x21, 0x87,
};

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* N(0,1) samples by Box–Muller from a xorshift generator with a fixed seed. */
static uint64_t rng = 0x5eed1a;
static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}
static double gaussian(void) {
    return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform());
}

/* 2^e for the normal range, without a libm call. */
static double pow2(int e) {
    union { uint64_t u; double d; } v = {(uint64_t)(e + 1023) << 52};
    return v.d;
}

/* round(x), halves away from zero, without a libm call or a branch (a data-dependent branch
 * here mispredicts on about every fourth coefficient): adding the largest double below 1/2
 * before truncating rounds exactly like round() for |x| < 2^52. */
static double round_half_away(double x) {
    return trunc(x + copysign(0.49999999999999994, x));
}

/* The smallest exponent at which every coefficient rounds into [−8, 7]: round(x) ≤ 7 iff
 * x < 7.5 and round(x) ≥ −8 iff x > −8.5, so it is the smallest e with 2^e > max(t⁺/7.5, t⁻/8.5). */
static int e_star(const double *t, int p) {
    double m = 0;
    for (int j = 0; j < p; j++) m = fmax(m, t[j] > 0 ? t[j] / 7.5 : -t[j] / 8.5);
    int e;
    frexp(m, &e); /* m = f·2^e with f in [0.5, 1): 2^(e−1) ≤ m < 2^e */
    return e;
}

/* The register's cycle from state 1, normalised to [−1, 1] and extended by C·P states, so
 * that U(s) of the seed at cycle position i is the C·P values after position i. */
static double *cycle(int c, int p, int k) {
    uint32_t taps = TAPS[k - 2], n = (1u << k) - 1, s = 1;
    double half = (double)(1u << (k - 1)), denom = half - 1;
    double *x = malloc(sizeof(double) * (n + c * p + 1));
    for (uint32_t i = 0; i <= n + c * p; i++) {
        x[i] = ((double)s - half) / denom;
        uint32_t fb = __builtin_popcount(s & taps) & 1;
        s = (s >> 1) | (fb << (k - 1));
    }
    return x;
}

/* Per seed, the pseudo-inverse (UᵀU)⁻¹Uᵀ (P×C, row-major) by Cholesky of UᵀU, computed once
 * before any block; a seed whose UᵀU is singular gets none (ok[pos] = 0) and is skipped. */
static double *pseudo_inverses(const double *x, int c, int p, int k, unsigned char *ok) {
    uint32_t n = (1u << k) - 1;
    double *pinv = malloc(sizeof(double) * (size_t)n * p * c);
    for (uint32_t pos = 0; pos < n; pos++) {
        const double(*u)[p] = (const double(*)[p])(x + pos + 1);
        double g[MAXP][MAXP];
        for (int j = 0; j < p; j++)
            for (int l = 0; l <= j; l++) {
                g[j][l] = 0;
                for (int i = 0; i < c; i++) g[j][l] += u[i][j] * u[i][l];
            }
        /* G = LLᵀ, L kept in g. */
        ok[pos] = 1;
        for (int j = 0; j < p && ok[pos]; j++)
            for (int l = 0; l <= j; l++) {
                double s = g[j][l];
                for (int m = 0; m < l; m++) s -= g[j][m] * g[l][m];
                if (l < j) {
                    g[j][l] = s / g[l][l];
                } else if (s > 1e-12) {
                    g[j][j] = sqrt(s);
                } else {
                    ok[pos] = 0;
                }
            }
        if (!ok[pos]) continue;
        /* Column i of the pseudo-inverse solves G t = row i of U. */
        double *out = pinv + (size_t)pos * p * c;
        for (int i = 0; i < c; i++) {
            double t[MAXP];
            for (int j = 0; j < p; j++) {
                double s = u[i][j];
                for (int l = 0; l < j; l++) s -= g[j][l] * t[l];
                t[j] = s / g[j][j];
            }
            for (int j = p - 1; j >= 0; j--) {
                double s = t[j];
                for (int l = j + 1; l < p; l++) s -= g[l][j] * t[l];
                t[j] = s / g[j][j];
            }
            for (int j = 0; j < p; j++) out[j * c + i] = t[j];
        }
    }
    return pinv;
}

/* The best (seed, e, q) of one block: returns its squared error. Per seed t = pinv·w, then the
 * exponents e*−1, e*, e*+1, each with its coefficients clamped and rounded and its error. */
static inline __attribute__((always_inline)) double search_cp(
    const double *w, const double *x, const double *pinv, const unsigned char *ok, int c, int p,
    int k) {
    uint32_t n = (1u << k) - 1;
    double best = INFINITY;
    for (uint32_t pos = 0; pos < n; pos++) {
        if (!ok[pos]) continue; /* a singular U(s): the well-conditioned seeds decide */
        const double(*u)[p] = (const double(*)[p])(x + pos + 1);
        const double *pi = pinv + (size_t)pos * p * c;
        double t[MAXP];
        for (int j = 0; j < p; j++) {
            t[j] = 0;
            for (int i = 0; i < c; i++) t[j] += pi[j * c + i] * w[i];
        }
        int es = e_star(t, p);
        for (int e = es - 1; e <= es + 1; e++) {
            double q[MAXP], err = 0, scale = pow2(e), inv = pow2(-e);
            for (int j = 0; j < p; j++) {
                double r = round_half_away(t[j] * inv);
                q[j] = r < -8 ? -8 : r > 7 ? 7 : r;
            }
            for (int i = 0; i < c; i++) {
                double s = 0;
                for (int j = 0; j < p; j++) s += u[i][j] * q[j];
                double d = w[i] - s * scale;
                err += d * d;
            }
            if (err < best) best = err;
        }
    }
    return best;
}

/* search_cp with the presets' C and P as constants, so the compiler unrolls their loops (as a
 * program written for one preset would have them), and any other configuration as given. */
static double search(const double *w, const double *x, const double *pinv,
                     const unsigned char *ok, int c, int p, int k) {
    if (c == 8 && p == 3) return search_cp(w, x, pinv, ok, 8, 3, k);
    if (c == 12 && p == 4) return search_cp(w, x, pinv, ok, 12, 4, k);
    return search_cp(w, x, pinv, ok, c, p, k);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s C P K BLOCKS\n", argv[0]);
        return 2;
    }
    int c = atoi(argv[1]), p = atoi(argv[2]), k = atoi(argv[3]), blocks = atoi(argv[4]);
    if (c < 1 || c > MAXC || p < 1 || p > MAXP || p > c || k < 2 || k > 24 || blocks < 1) {
        fprintf(stderr, "need 1 ≤ P ≤ C ≤ %d, P ≤ %d, 2 ≤ K ≤ 24, BLOCKS ≥ 1\n", MAXC, MAXP);
        return 2;
    }
    double *w = malloc(sizeof(double) * c * blocks);
    for (int i = 0; i < c * blocks; i++) w[i] = gaussian();
    double *x = cycle(c, p, k);
    unsigned char *ok = malloc((1u << k) - 1);
    double t0 = now();
    double *pinv = pseudo_inverses(x, c, p, k, ok);
    double table_secs = now() - t0, err = 0, energy = 0;
    t0 = now();
    for (int bl = 0; bl < blocks; bl++) err += search(w + bl * c, x, pinv, ok, c, p, k);
    double secs = now() - t0;
    for (int i = 0; i < c * blocks; i++) energy += w[i] * w[i];
    printf("{\"C\":%d,\"P\":%d,\"K\":%d,\"blocks\":%d,\"table_seconds\":%.4f,\"seconds\":%.4f,\"blocks_per_s\":%.2f,"
           "\"relmse\":%.6f}\n",
           c, p, k, blocks, table_secs, secs, blocks / secs, err / energy);
    free(w);
    free(x);
    free(ok);
    free(pinv);
    return 0;
}
