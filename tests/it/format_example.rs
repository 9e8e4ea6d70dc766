//! The worked example of FORMAT.md §5, decoded with the library: if the format or the decoder
//! arithmetic changes, this test and the document must change together.

use seedlm::core::basis::Basis;
use seedlm::core::config::Config;
use seedlm::io::model::Model;
use seedlm::io::packed::unpack_blocks;
use seedlm::search::compress::CompressedTensor;

#[test]
fn format_md_worked_example() {
    let cfg = Config::FOUR_BIT;
    let bytes = [0x29, 0x74, 0x0c, 0xc9];
    let blocks = unpack_blocks(&bytes, cfg, 1).unwrap();
    let b = blocks[0];
    assert_eq!(
        (b.seed, b.e_code, &b.q[..3]),
        (29737, 12, &[0i8, -7, -4][..])
    );

    let basis = Basis::for_k(16);
    let v = basis.v_matrix(b.seed, 8, 3);
    assert_eq!(
        v,
        [
            47636, 56586, 61061, 63298, 31649, 15824, 40680, 20340, 10170, 5085, 35310, 17655,
            8827, 37181, 51358, 25679, 45607, 55571, 60553, 30276, 47906, 23953, 11976, 38756
        ]
    );
    let n: Vec<i64> = v
        .chunks(3)
        .map(|row| {
            row.iter()
                .zip(&b.q)
                .map(|(&x, &q)| (i64::from(x) - 32768) * i64::from(q))
                .sum()
        })
        .collect();
    assert_eq!(
        n,
        [
            -279898, 75609, 177388, 42658, -105251, -181085, -43108, 121592
        ]
    );

    let t = CompressedTensor {
        config: cfg,
        e_base: -18,
        len: 8,
        blocks,
    };
    let mut f64s = [0.0; 8];
    t.reconstruct_block(&basis, 0, &mut f64s);
    for (w, &n) in f64s.iter().zip(&n) {
        assert_eq!(
            *w,
            n as f64 / 32767.0 * 2f64.powi(-6),
            "the order of FORMAT.md §4"
        );
    }
    assert_eq!(f64s[0], -0.13346984008301035);
    assert_eq!(f64s[7], 0.05798135319071016);
    let f32s = t.reconstruct();
    let f16_bits: Vec<u16> = f32s
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    assert_eq!(
        f16_bits,
        [
            0xb045, 0x289d, 0x2d6a, 0x2535, 0xaa6d, 0xad87, 0xa543, 0x2b6c
        ]
    );

    // The block really is the start of that tensor in the bundled demo model.
    let demo = crate::helpers::demo_model();
    let m = Model::open(&demo).unwrap();
    let w = m
        .to_f32(
            m.get("encoder.layer.0.attention.self.query.weight")
                .unwrap(),
        )
        .unwrap();
    let original = [
        -0.14855957f32,
        0.0435791,
        0.08557129,
        0.024215698,
        -0.039886475,
        -0.08343506,
        -0.016357422,
        0.04751587,
    ];
    assert_eq!(w[..8], original);
}
