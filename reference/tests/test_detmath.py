"""reference/detmath.py: the stated summation orders hold bit for bit, and the elementary
functions are within their stated error of a 50-digit decimal computation, edge inputs included.
These are the operations that keep the f32-numerics fixtures independent of BLAS, libm and CPU."""

import math
import unittest
from decimal import Decimal, localcontext

import numpy as np

from reference import detmath as dm

PI = Decimal('3.14159265358979323846264338327950288419716939937510582097494459230781640628620899')


def ulp_error(got, exact):
    """|got − exact| in units of the last place of got (float64)."""
    return float(abs(Decimal(float(got)) - exact) / Decimal(math.ulp(float(got))))


def dec_cos_sin(v):
    """cos and sin of a float64 to ~60 digits (Taylor series after reducing by 2π in decimal)."""
    with localcontext() as ctx:
        ctx.prec = 80
        x = Decimal(float(v))
        x -= (x / (2 * PI)).to_integral_value() * 2 * PI
        c = tc = Decimal(1)
        s = ts = x
        i = 0
        while abs(tc) > Decimal('1e-70') or abs(ts) > Decimal('1e-70'):
            i += 1
            tc = -tc * x * x / ((2 * i - 1) * (2 * i))
            ts = -ts * x * x / ((2 * i) * (2 * i + 1))
            c += tc
            s += ts
        return +c, +s


class SummationOrder(unittest.TestCase):
    def test_sequential_sum_is_a_left_to_right_loop(self):
        rng = np.random.default_rng(7)
        a = rng.standard_normal((5, 301)) * np.exp2(rng.integers(-30, 30, (5, 301)))
        got = dm.sequential_sum(a)
        for r in range(5):
            s = 0.0
            for v in a[r]:
                s += float(v)
            self.assertEqual(got[r], s)
        self.assertEqual(dm.sequential_sum(np.zeros((3, 0))).tolist(), [0.0, 0.0, 0.0])

    def test_matmul_nt_is_the_k_ordered_loop(self):
        rng = np.random.default_rng(8)
        x = rng.standard_normal((2, 3, 37)) * 1e3
        w = rng.standard_normal((5, 37)).astype(np.float32)       # broadcast over the leading axis
        got = dm.matmul_nt(x, w)
        self.assertEqual(got.shape, (2, 3, 5))
        for b in range(2):
            for t in range(3):
                for n in range(5):
                    s = 0.0
                    for k in range(37):
                        s += float(x[b, t, k]) * float(w[n, k])
                    self.assertEqual(got[b, t, n], s)

    def test_order_matters_so_the_test_can_fail(self):
        # a case where the loop order changes the result: 1e16 + 1 − 1e16 loses the 1
        x = np.array([[1e16, 1.0, -1e16]])
        w = np.ones((1, 3))
        self.assertEqual(dm.matmul_nt(x, w)[0, 0], 0.0)
        self.assertEqual(dm.matmul_nt(x[:, ::-1], w)[0, 0], 0.0)
        self.assertEqual(dm.matmul_nt(x[:, [0, 2, 1]], w)[0, 0], 1.0)


class ElementaryFunctions(unittest.TestCase):
    def test_exp_within_one_ulp_of_decimal(self):
        rng = np.random.default_rng(9)
        x = np.concatenate([rng.uniform(-40, 40, 800), rng.uniform(-745, 709.7, 400),
                            rng.uniform(-1e-6, 1e-6, 100), [0.0, -0.0, 1.0, -1.0, 0.5 * math.log(2)]])
        y = dm.exp(x)
        worst = 0.0
        with localcontext() as ctx:
            ctx.prec = 50
            for v, got in zip(x, y):
                exact = Decimal(float(v)).exp()
                if exact < Decimal('2.3e-308'):   # subnormal results: absolute error instead
                    self.assertLessEqual(abs(Decimal(float(got)) - exact), Decimal('5e-324'))
                    continue
                worst = max(worst, ulp_error(got, exact))
        self.assertLess(worst, 1.0, 'exp: worst error %.3f ulp' % worst)

    def test_exp_edges(self):
        y = dm.exp(np.array([np.nan, np.inf, -np.inf, 709.8, -745.2, 0.0]))
        self.assertTrue(np.isnan(y[0]))
        self.assertEqual(y[1:].tolist(), [np.inf, 0.0, np.inf, 0.0, 1.0])

    def test_cos_sin_within_two_ulp_of_decimal(self):
        rng = np.random.default_rng(10)
        x = np.concatenate([rng.uniform(-4, 4, 300), rng.uniform(0, 4096, 300) * rng.uniform(0, 1, 300),
                            np.arange(0, 4096, 97, dtype=np.float64), [0.0, math.pi / 4, math.pi / 2]])
        c, s = dm.cos_sin(x)
        worst = 0.0
        for v, gc, gs in zip(x, c, s):
            ec, es = dec_cos_sin(v)
            # near a zero of cos/sin the ulp of the result is tiny: measure in ulps of 1 there
            for got, exact in ((gc, ec), (gs, es)):
                if abs(exact) < Decimal('1e-3'):
                    self.assertLess(abs(Decimal(float(got)) - exact), Decimal(2.0 ** -53))
                else:
                    worst = max(worst, ulp_error(got, exact))
        self.assertLess(worst, 2.0, 'cos/sin: worst error %.3f ulp' % worst)

    def test_cos_sin_edges(self):
        c, s = dm.cos_sin(np.array([np.nan, np.inf]))
        self.assertTrue(np.all(np.isnan(c)) and np.all(np.isnan(s)))
        self.assertRaises(ValueError, dm.cos_sin, np.array([2e6]))

    def test_power_is_decimal_exact(self):
        self.assertEqual(dm.power(10000.0, -2.0 / 64), 0.7498942093324559)
        self.assertEqual(dm.power(2.0, 0.5), math.sqrt(2.0))
        self.assertEqual(dm.power(500000.0, -1.0), 2e-06)


if __name__ == '__main__':
    unittest.main()
