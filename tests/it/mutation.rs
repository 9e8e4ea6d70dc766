//! Damaged files never crash the readers: thousands of random byte edits and truncations of a
//! packed file either fail with an error naming the file or open to exactly the original
//! model (an edit the checksums cannot see changes nothing, such as `e` to `E` in a number).
//! `scripts/fuzz_readers.py` does the same through the binary, with header-aware edits.

use crate::helpers::{seedlm, small_model, write_model};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use seedlm::io::opened::{self, Opened};

#[test]
fn random_damage_gives_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.safetensors");
    write_model(&input, &small_model());
    let packed = dir.path().join("p.seedlm");
    let status = seedlm()
        .args([
            "compress",
            input.to_str().unwrap(),
            "-o",
            packed.to_str().unwrap(),
        ])
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    let good = std::fs::read(&packed).unwrap();
    let original = opened::open(&packed).unwrap();
    let Opened::Packed(original) = original else {
        panic!("the packed file opens as packed")
    };
    let damaged = dir.path().join("damaged.seedlm");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (mut opened_ok, mut refused) = (0, 0);
    for _ in 0..1500 {
        let mut bytes = good.clone();
        match rng.random_range(0..3) {
            0 => bytes.truncate(rng.random_range(0..good.len())),
            1 => {
                let i = rng.random_range(0..good.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            _ => {
                let i = rng.random_range(0..good.len());
                bytes[i] = rng.random();
            }
        }
        std::fs::write(&damaged, &bytes).unwrap();
        match opened::open(&damaged) {
            Ok(Opened::Packed(p)) => {
                opened_ok += 1;
                // Whatever survived verification is the original model.
                assert_eq!(p.tensors(), original.tensors());
                for t in p.tensors() {
                    assert_eq!(p.stored_bytes(t), original.stored_bytes(t), "{}", t.name);
                }
                assert_eq!(p.source_metadata(), original.source_metadata());
            }
            Ok(Opened::Plain(_)) => panic!("a damaged packed file was read as a plain model"),
            Err(e) => {
                refused += 1;
                assert!(e.to_string().contains("damaged.seedlm"), "{e}");
            }
        }
    }
    assert!(
        refused > 0 && opened_ok > 0,
        "{refused} refused, {opened_ok} opened"
    );
}
