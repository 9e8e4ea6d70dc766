/* A plain scalar exact seed search, the baseline `seedlm bench` is compared against
 * (docs/measurements-search.md): for every seed, U(s) from the LFSR, the least-squares
 * coefficients t = (UᵀU)⁻¹Uᵀw by Cholesky, then the exponents e*−1, e*, e*+1 (e* the smallest at
 * which every rounded coefficient fits in [−8, 7]), coefficients clamped and rounded, and the
 * error of that quantization; the best over all seeds wins. One thread, doubles throughout.
 *
 * U(s) is read from the register's cycle, stored once (as the engine does), rather than
 * stepping the register C·P times per seed.
 *
 * Build: gcc -O3 -march=native -o scalar_search scripts/scalar_search.c -lm
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

/* round(x), halves away from zero, without a libm call: trunc is one instruction here. */
static double round_half_away(double x) {
    double t = trunc(x), f = x - t;
    return t + (f >= 0.5) - (f <= -0.5);
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

/* The best (seed, e, q) of one block: returns its squared error. */
static double search(const double *w, const double *x, int c, int p, int k) {
    uint32_t n = (1u << k) - 1;
    double best = INFINITY;
    for (uint32_t pos = 0; pos < n; pos++) {
        double g[MAXP][MAXP], b[MAXP], t[MAXP];
        const double(*u)[p] = (const double(*)[p])(x + pos + 1);
        /* Normal equations UᵀU t = Uᵀw, solved by Cholesky (G = LLᵀ, L kept in g). */
        for (int j = 0; j < p; j++) {
            b[j] = 0;
            for (int i = 0; i < c; i++) b[j] += u[i][j] * w[i];
            for (int l = 0; l <= j; l++) {
                g[j][l] = 0;
                for (int i = 0; i < c; i++) g[j][l] += u[i][j] * u[i][l];
            }
        }
        int ok = 1;
        for (int j = 0; j < p && ok; j++) {
            for (int l = 0; l <= j; l++) {
                double x = g[j][l];
                for (int m = 0; m < l; m++) x -= g[j][m] * g[l][m];
                if (l < j) {
                    g[j][l] = x / g[l][l];
                } else if (x > 1e-12) {
                    g[j][j] = sqrt(x);
                } else {
                    ok = 0;
                }
            }
        }
        if (!ok) continue; /* a singular U(s): the well-conditioned seeds decide */
        for (int j = 0; j < p; j++) {
            double x = b[j];
            for (int l = 0; l < j; l++) x -= g[j][l] * t[l];
            t[j] = x / g[j][j];
        }
        for (int j = p - 1; j >= 0; j--) {
            double x = t[j];
            for (int l = j + 1; l < p; l++) x -= g[l][j] * t[l];
            t[j] = x / g[j][j];
        }
        int es = e_star(t, p);
        for (int e = es - 1; e <= es + 1; e++) {
            double q[MAXP], err = 0, scale = pow2(e), inv = pow2(-e);
            for (int j = 0; j < p; j++) q[j] = fmin(7, fmax(-8, round_half_away(t[j] * inv)));
            for (int i = 0; i < c; i++) {
                double x = 0;
                for (int j = 0; j < p; j++) x += u[i][j] * q[j];
                double d = w[i] - x * scale;
                err += d * d;
            }
            if (err < best) best = err;
        }
    }
    return best;
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
    double err = 0, energy = 0, t0 = now();
    for (int bl = 0; bl < blocks; bl++) err += search(w + bl * c, x, c, p, k);
    double secs = now() - t0;
    for (int i = 0; i < c * blocks; i++) energy += w[i] * w[i];
    printf("{\"C\":%d,\"P\":%d,\"K\":%d,\"blocks\":%d,\"seconds\":%.4f,\"blocks_per_s\":%.2f,"
           "\"relmse\":%.6f}\n",
           c, p, k, blocks, secs, blocks / secs, err / energy);
    free(w);
    free(x);
    return 0;
}
