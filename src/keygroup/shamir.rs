//! Shamir secret sharing over GF(2^8) (the AES field, reduction polynomial
//! x^8 + x^4 + x^3 + x + 1), byte-wise over a 32-byte secret, in constant
//! time with respect to the secret, the shares and the coefficients (no
//! table lookups, no branches on them). The share x-coordinates are public.

use zeroize::Zeroize;

use crate::keys::DATA_KEY_LEN;

/// `a * b` in GF(2^8), constant time: eight rounds of shift-and-add, the
/// conditional steps done with masks.
pub(crate) fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & carry);
        b >>= 1;
    }
    p
}

/// `a^254 = a^-1` in GF(2^8) (0 for 0), constant time (a fixed chain of
/// multiplications).
pub(crate) fn inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: square-and-multiply with a fixed schedule.
    let a2 = mul(a, a);
    let a3 = mul(a2, a);
    let a6 = mul(a3, a3);
    let a12 = mul(a6, a6);
    let a15 = mul(a12, a3);
    let a30 = mul(a15, a15);
    let a60 = mul(a30, a30);
    let a120 = mul(a60, a60);
    let a240 = mul(a120, a120);
    let a252 = mul(a240, a12);
    mul(a252, a2)
}

/// The share of x-coordinate `x` (1..=255) of `secret` under the polynomial
/// whose other coefficients are `coeffs` (`k - 1` per secret byte: byte `j`
/// uses `coeffs[j * (k - 1) ..][.. k - 1]`), written into `share`.
pub(crate) fn share(secret: &[u8; DATA_KEY_LEN], coeffs: &[u8], x: u8, share: &mut [u8; DATA_KEY_LEN]) {
    let per = coeffs.len() / DATA_KEY_LEN;
    for (j, (out, s)) in share.iter_mut().zip(secret).enumerate() {
        let c = coeffs
            .get(j.saturating_mul(per)..j.saturating_add(1).saturating_mul(per))
            .unwrap_or(&[]);
        // Horner: ((c_{k-1} x + c_{k-2}) x + ... + c_1) x + s.
        let mut acc = 0u8;
        for coef in c.iter().rev() {
            acc = mul(acc, x) ^ coef;
        }
        *out = mul(acc, x) ^ s;
    }
}

/// The Lagrange basis value at 0 of the point `xs[i]` among `xs` (distinct,
/// non-zero; public values, so no constant-time requirement).
pub(crate) fn basis_at_zero(xs: &[u8], i: usize) -> u8 {
    let xi = xs.get(i).copied().unwrap_or(0);
    let mut num = 1u8;
    let mut den = 1u8;
    for (j, xj) in xs.iter().enumerate() {
        if j != i {
            num = mul(num, *xj);
            den = mul(den, xj ^ xi);
        }
    }
    mul(num, inv(den))
}

/// Adds `share * basis` into `acc` (constant time in `share`).
pub(crate) fn accumulate(acc: &mut [u8; DATA_KEY_LEN], share: &[u8; DATA_KEY_LEN], basis: u8) {
    for (a, y) in acc.iter_mut().zip(share) {
        *a ^= mul(*y, basis);
    }
}

/// Wipes a coefficient buffer (a helper so callers cannot forget).
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table-free reference: carry-less multiply then reduce.
    #[allow(clippy::arithmetic_side_effects, reason = "a test reference")]
    fn slow_mul(a: u8, b: u8) -> u8 {
        let mut r: u16 = 0;
        for i in 0..8 {
            if (b >> i) & 1 == 1 {
                r ^= u16::from(a) << i;
            }
        }
        for i in (8..16).rev() {
            if (r >> i) & 1 == 1 {
                r ^= 0x11b << (i - 8);
            }
        }
        u8::try_from(r).unwrap()
    }

    #[test]
    fn field_arithmetic_matches_the_reference() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), slow_mul(a, b));
            }
            if a != 0 {
                assert_eq!(mul(a, inv(a)), 1, "{a}");
            }
        }
        assert_eq!(inv(0), 0);
        // FIPS-197 §4.2: {57} • {83} = {c1}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
    }

    #[test]
    fn any_k_shares_recover_the_secret() {
        let secret: [u8; 32] = core::array::from_fn(|i| u8::try_from(i * 7 + 3).unwrap());
        for k in 1..=4usize {
            let coeffs: alloc::vec::Vec<u8> = (0..32 * (k - 1)).map(|i| u8::try_from(i % 251).unwrap()).collect();
            let shares: alloc::vec::Vec<[u8; 32]> = (1..=5u8)
                .map(|x| {
                    let mut s = [0u8; 32];
                    share(&secret, &coeffs, x, &mut s);
                    s
                })
                .collect();
            // Every window of k consecutive shares.
            for start in 0..=(5 - k) {
                let xs: alloc::vec::Vec<u8> = (start..start + k).map(|i| u8::try_from(i + 1).unwrap()).collect();
                let mut acc = [0u8; 32];
                for (i, idx) in (start..start + k).enumerate() {
                    accumulate(&mut acc, &shares[idx], basis_at_zero(&xs, i));
                }
                assert_eq!(acc, secret, "k={k} start={start}");
            }
            if k > 1 {
                // k - 1 shares give something else.
                let xs = [1u8];
                let mut acc = [0u8; 32];
                accumulate(&mut acc, &shares[0], basis_at_zero(&xs, 0));
                assert_ne!(acc, secret);
            }
        }
    }
}
