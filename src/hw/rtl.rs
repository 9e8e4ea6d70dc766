//! The bundled RTL (`hdl/`): its files and the simulator tops built from them. The Verilator
//! build, the synthesis and the designs all name a top by its [`Target`].

/// An RTL file: its name and text.
pub type Source = (&'static str, &'static str);

macro_rules! hdl {
    ($name:literal) => {
        ($name, include_str!(concat!("../../hdl/", $name)))
    };
}

const LFSR_JUMP: Source = hdl!("seedlm_lfsr_jump.sv");
/// Every file of the matrix–vector tops, package and interfaces first.
const MVM_RTL: [Source; 15] = [
    hdl!("seedlm_pkg.sv"),
    hdl!("mvm_in_if.sv"),
    hdl!("mvm_acc_if.sv"),
    hdl!("mvm_beat_if.sv"),
    hdl!("mvm_ctrl.sv"),
    hdl!("mvm_row_acc.sv"),
    hdl!("mvm_beat_front.sv"),
    LFSR_JUMP,
    hdl!("seedlm_record_decode.sv"),
    hdl!("seedlm_fp16_convert.sv"),
    hdl!("ref_mvm.sv"),
    hdl!("seedlm_mvm.sv"),
    hdl!("seedlm3_x_file.sv"),
    hdl!("seedlm3_mvm.sv"),
    hdl!("mvm_top.sv"),
];
const LFSR_RTL: [Source; 2] = [MVM_RTL[0], LFSR_JUMP];
const MVM_HARNESS: Source = ("mvm_main.cpp", include_str!("../../hdl/tb/mvm_main.cpp"));
const HARNESS_H: Source = ("harness.h", include_str!("../../hdl/tb/harness.h"));
const LFSR_HARNESS: Source = ("lfsr_main.cpp", include_str!("../../hdl/tb/lfsr_main.cpp"));

/// A simulator that can be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The FP16 reference datapath (`ref_mvm` in `mvm_top`).
    RefMvm,
    /// The SeedLM datapath of whole-beat records, the 4-bit preset (`seedlm_mvm` in `mvm_top`).
    SeedlmMvm,
    /// The 4-bit datapath with its weights rounded to FP16 before the MACs (`seedlm_mvm` with
    /// `Arith = ArithFp16` in `mvm_top`).
    SeedlmFp16Mvm,
    /// The 3-bit preset's datapath with its gearbox (`seedlm3_mvm` in `mvm_top`).
    Seedlm3Mvm,
    /// The LFSR jump-ahead unit alone (`seedlm_lfsr_jump`, `tb/lfsr_main.cpp`).
    LfsrUnit,
}

impl Target {
    /// The simulator's name (its cache folder): the module it simulates.
    pub fn name(self) -> &'static str {
        match self {
            Target::RefMvm => "ref_mvm",
            Target::SeedlmMvm => "seedlm_mvm",
            Target::SeedlmFp16Mvm => "seedlm_fp16_mvm",
            Target::Seedlm3Mvm => "seedlm3_mvm",
            Target::LfsrUnit => "seedlm_lfsr_jump",
        }
    }

    /// The top module.
    pub fn top(self) -> &'static str {
        match self {
            Target::RefMvm | Target::SeedlmMvm | Target::SeedlmFp16Mvm | Target::Seedlm3Mvm => {
                "mvm_top"
            }
            Target::LfsrUnit => "seedlm_lfsr_jump",
        }
    }

    /// Verilator's parameter flags for the top: `mvm_top`'s `Datapath` (`DpRef`, `DpSeedlm`,
    /// `DpSeedlm3` in `hdl/seedlm_pkg.sv`) and `Arith` (`ArithFp16`).
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Target::RefMvm => &["-GDatapath=0"],
            Target::SeedlmMvm => &["-GDatapath=1"],
            Target::SeedlmFp16Mvm => &["-GDatapath=1", "-GArith=1"],
            Target::Seedlm3Mvm => &["-GDatapath=2"],
            Target::LfsrUnit => &[],
        }
    }

    /// The RTL files of the top, in compile order, as (name, text).
    pub fn sources(self) -> &'static [Source] {
        match self {
            Target::RefMvm | Target::SeedlmMvm | Target::SeedlmFp16Mvm | Target::Seedlm3Mvm => {
                &MVM_RTL
            }
            Target::LfsrUnit => &LFSR_RTL,
        }
    }

    /// The C++ harness: every matrix–vector top shares one (`tb/mvm_main.cpp`).
    pub(crate) fn harness(self) -> Source {
        match self {
            Target::RefMvm | Target::SeedlmMvm | Target::SeedlmFp16Mvm | Target::Seedlm3Mvm => {
                MVM_HARNESS
            }
            Target::LfsrUnit => LFSR_HARNESS,
        }
    }

    /// Files the harness includes (written beside it, not passed to Verilator).
    pub(crate) fn headers(self) -> &'static [Source] {
        match self {
            Target::RefMvm | Target::SeedlmMvm | Target::SeedlmFp16Mvm | Target::Seedlm3Mvm => {
                std::slice::from_ref(&HARNESS_H)
            }
            Target::LfsrUnit => &[],
        }
    }
}
