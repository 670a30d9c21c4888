//! PyTorch `state_dict` names of xbn's module paths.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// The layout family of a model, which decides how its module paths map to PyTorch names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// ResNet / ResNeXt (torchvision and the authors' code name them alike): only the
    /// shortcut differs, `downsample.conv` / `downsample.bn` ↔ `downsample.0` / `downsample.1`.
    ResNet,
    /// MobileNetV2.
    MobileNetV2,
    /// ShuffleNetV2 (Megvii layout).
    ShuffleNetV2,
    /// Any other model: PyTorch names are xbn's module paths.
    Generic,
}

/// Whose names a PyTorch checkpoint uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Naming {
    /// Pick the naming that matches the most tensors of the file (loading); the authors'
    /// naming (saving).
    #[default]
    Auto,
    /// The XBNBlock authors' code (`models/*.py` of huangleiBuaa/XBNBlock).
    Authors,
    /// torchvision (`torchvision.models`); differs from the authors' only for MobileNetV2.
    Torchvision,
}

/// The PyTorch names of `paths` (xbn module paths of one model, enum variants left out).
/// The whole list is needed because a MobileNetV2 block's names depend on whether it has
/// an expansion convolution. `naming` must be `Authors` or `Torchvision` (`Auto` means
/// the authors').
pub fn pytorch_names(paths: &[String], family: Family, naming: Naming) -> Vec<String> {
    let set: HashSet<&str> = paths.iter().map(String::as_str).collect();
    paths
        .iter()
        .map(|p| pytorch_name(p, family, naming, &set))
        .collect()
}

fn pytorch_name(path: &str, family: Family, naming: Naming, all: &HashSet<&str>) -> String {
    let seg: Vec<&str> = path.split('.').collect();
    let join = |v: &[&str]| v.join(".");
    match family {
        Family::Generic => path.to_string(),
        Family::ResNet => {
            let mut out: Vec<&str> = seg.clone();
            if let Some(i) = seg.iter().position(|&s| s == "downsample")
                && let Some(next) = seg.get(i + 1)
            {
                out[i + 1] = match *next {
                    "conv" => "0",
                    "bn" => "1",
                    other => other,
                };
            }
            join(&out)
        }
        Family::ShuffleNetV2 => {
            let renamed: Option<Vec<&str>> = match seg.as_slice() {
                ["first_conv", rest @ ..] => Some([&["first_conv", "0"], rest].concat()),
                ["first_norm", rest @ ..] => Some([&["first_conv", "1"], rest].concat()),
                ["conv_last", rest @ ..] => Some([&["conv_last", "0"], rest].concat()),
                ["conv_last_norm", rest @ ..] => Some([&["conv_last", "1"], rest].concat()),
                ["classifier", rest @ ..] => Some([&["classifier", "0"], rest].concat()),
                ["features", i, "proj", layer, rest @ ..] => {
                    let idx = match *layer {
                        "dw" => Some("0"),
                        "dw_norm" => Some("1"),
                        "pw" => Some("2"),
                        "pw_norm" => Some("3"),
                        _ => None,
                    };
                    idx.map(|idx| [&["features", i, "branch_proj", idx], rest].concat())
                }
                ["features", i, layer, rest @ ..] => {
                    let idx = match *layer {
                        "main_pw" => Some("0"),
                        "main_pw_norm" => Some("1"),
                        "main_dw" => Some("3"),
                        "main_dw_norm" => Some("4"),
                        "main_pw_linear" => Some("5"),
                        "main_pw_linear_norm" => Some("6"),
                        _ => None,
                    };
                    idx.map(|idx| [&["features", i, "branch_main", idx], rest].concat())
                }
                _ => None,
            };
            renamed.map_or_else(|| path.to_string(), |v| join(&v))
        }
        Family::MobileNetV2 => {
            let torchvision = naming == Naming::Torchvision;
            match seg.as_slice() {
                ["classifier", rest @ ..] if torchvision => {
                    join(&[&["classifier", "1"], rest].concat())
                }
                ["features", i, "conv", rest @ ..] => join(&[&["features", i, "0"], rest].concat()),
                ["features", i, "norm", rest @ ..] => join(&[&["features", i, "1"], rest].concat()),
                ["features", i, "expand", part, rest @ ..] => {
                    let idx: &[&str] = match (*part, torchvision) {
                        ("conv", false) => &["0"],
                        ("norm", false) => &["1"],
                        ("conv", true) => &["0", "0"],
                        ("norm", true) => &["0", "1"],
                        _ => return path.to_string(),
                    };
                    join(&[&["features", i, "conv"], idx, rest].concat())
                }
                ["features", i, layer, rest @ ..] => {
                    let expand = format!("features.{i}.expand.conv.weight");
                    let has_expand = all.contains(expand.as_str());
                    let idx: &[&str] = match (*layer, has_expand, torchvision) {
                        ("depthwise", true, false) => &["3"],
                        ("depthwise_norm", true, false) => &["4"],
                        ("project", true, false) => &["6"],
                        ("project_norm", true, false) => &["7"],
                        ("depthwise", false, false) => &["0"],
                        ("depthwise_norm", false, false) => &["1"],
                        ("project", false, false) => &["3"],
                        ("project_norm", false, false) => &["4"],
                        ("depthwise", true, true) => &["1", "0"],
                        ("depthwise_norm", true, true) => &["1", "1"],
                        ("project", true, true) => &["2"],
                        ("project_norm", true, true) => &["3"],
                        ("depthwise", false, true) => &["0", "0"],
                        ("depthwise_norm", false, true) => &["0", "1"],
                        ("project", false, true) => &["1"],
                        ("project_norm", false, true) => &["2"],
                        _ => return path.to_string(),
                    };
                    join(&[&["features", i, "conv"], idx, rest].concat())
                }
                _ => path.to_string(),
            }
        }
    }
}
