//! Challenge–response authentication with the cluster secret (HMAC-SHA256).
//!
//! Each side sends a fresh 32-byte nonce in its `Hello`; each proves it knows the secret with
//! `HMAC(secret, label ‖ version ‖ prover ‖ verifier ‖ prover incarnation ‖ verifier nonce ‖
//! prover nonce)`. The verifier's fresh nonce makes replays useless; the ordered ids stop a tag
//! from being reflected back to its author. Tags are compared in constant time
//! (`Mac::verify_slice`).

use super::wire::{MAC_LEN, NONCE_LEN};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"actix-coord/auth/v1";

/// What one side proves.
pub(crate) struct Challenge<'a> {
    pub(crate) version: u64,
    pub(crate) prover: u32,
    pub(crate) verifier: u32,
    pub(crate) prover_incarnation: u64,
    pub(crate) verifier_nonce: &'a [u8; NONCE_LEN],
    pub(crate) prover_nonce: &'a [u8; NONCE_LEN],
}

fn keyed(secret: &[u8], c: &Challenge<'_>) -> HmacSha256 {
    // HMAC accepts keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(LABEL);
    m.update(&c.version.to_le_bytes());
    m.update(&c.prover.to_le_bytes());
    m.update(&c.verifier.to_le_bytes());
    m.update(&c.prover_incarnation.to_le_bytes());
    m.update(c.verifier_nonce);
    m.update(c.prover_nonce);
    m
}

/// The tag the prover sends.
pub(crate) fn prove(secret: &[u8], c: &Challenge<'_>) -> [u8; MAC_LEN] {
    keyed(secret, c).finalize().into_bytes().into()
}

/// Whether `tag` proves the challenge (constant-time comparison).
pub(crate) fn verify(secret: &[u8], c: &Challenge<'_>, tag: &[u8; MAC_LEN]) -> bool {
    keyed(secret, c).verify_slice(tag).is_ok()
}

/// A fresh random nonce from the operating system (or the seeded source in simulation).
pub(crate) fn fresh_nonce(rng: Option<&mut rand::rngs::StdRng>) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    match rng {
        Some(r) => rand::RngCore::fill_bytes(r, &mut n),
        None => {
            if getrandom::fill(&mut n).is_err() {
                // No OS randomness: fall back to the thread generator (itself OS-seeded).
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut n);
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch<'a>(a: &'a [u8; 32], b: &'a [u8; 32]) -> Challenge<'a> {
        Challenge {
            version: 1,
            prover: 1,
            verifier: 2,
            prover_incarnation: 5,
            verifier_nonce: a,
            prover_nonce: b,
        }
    }

    #[test]
    fn right_secret_verifies_wrong_secret_and_reflection_do_not() {
        let (n1, n2) = ([1u8; 32], [2u8; 32]);
        let tag = prove(b"s3cret", &ch(&n1, &n2));
        assert!(verify(b"s3cret", &ch(&n1, &n2), &tag));
        assert!(!verify(b"other", &ch(&n1, &n2), &tag));
        // Reflected: the same tag presented in the other direction.
        let reflected = Challenge {
            prover: 2,
            verifier: 1,
            ..ch(&n1, &n2)
        };
        assert!(!verify(b"s3cret", &reflected, &tag));
        // Another nonce (a replay against a fresh challenge).
        assert!(!verify(b"s3cret", &ch(&[3u8; 32], &n2), &tag));
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce(None), fresh_nonce(None));
    }
}
