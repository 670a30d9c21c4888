#!/usr/bin/env python3
"""PyTorch references for xbn's model zoo (issue 3).

The networks below follow the XBNBlock authors' code (github.com/huangleiBuaa/XBNBlock,
models/resnet*.py, resnext*.py, mobilenetV2*.py, shuffleV2*.py at 23e54f2): the same
modules, names, layer order, norm placements and initialisation. The authors' `my.Norm`
is `nn.GroupNorm(min(G, C), C)` under `--norm=GN --norm-cfg=num_groups=G` and BatchNorm2d
under `--norm=BN`. Two deliberate differences, both equivalent at the authors' 224x224:
the ResNet head uses adaptive average pooling (the issue asks for any input size) and the
ResNet widths are parameters so the parity fixtures stay small.

Writes
  tests/fixtures/zoo_counts.json   parameters, BN/GN layers (with GN groups/channels) and
                                   conv+linear MACs at 224x224 of every registered model
                                   (1000 classes)
  tests/fixtures/zoo/<case>.*      small models trained 3 SGD steps (non-trivial running
                                   statistics): weights as a PyTorch checkpoint (.pth, in
                                   the variants xbn must read) or safetensors, and the
                                   eval-mode logits of a fixed input (<case>.io.safetensors)

  tests/fixtures/images/           a PNG and torchvision's evaluation transform of it

Usage: python3 tools/gen_zoo.py [counts] [parity] [preprocess]
       (needs torch, torchvision, safetensors, pillow)
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


# --------------------------------------------------------------------------
# The authors' `my.Norm` (extension/normalization/normalization.py)
# --------------------------------------------------------------------------

class my:
    kind = "BN"
    groups = 32

    @staticmethod
    def Norm(c):
        if my.kind == "GN":
            return nn.GroupNorm(min(my.groups, c), c)
        return nn.BatchNorm2d(c)


def set_norm(kind, groups=32):
    my.kind, my.groups = kind, groups


# --------------------------------------------------------------------------
# ResNet / ResNeXt (resnet.py, resnet_XBNBlock_P{1,2,3}.py, resnext*.py)
# placement: "bn" (all my.Norm slots are BN), "p1", "p2", "p3", "all" (forGN)
# --------------------------------------------------------------------------

def conv3x3(i, o, stride=1, groups=1):
    return nn.Conv2d(i, o, 3, stride, 1, groups=groups, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, downsample, placement, **_):
        super().__init__()
        bfn = lambda c: my.Norm(c)
        bn = nn.BatchNorm2d if placement != "all" else bfn
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = bfn(planes) if placement in ("p1", "p2", "all") else bn(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = bfn(planes) if placement in ("p3", "all") else bn(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, downsample, placement, groups=1, base_width=64):
        super().__init__()
        bfn = lambda c: my.Norm(c)
        bn = nn.BatchNorm2d if placement != "all" else bfn
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = bfn(width) if placement in ("p1", "all") else bn(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = bfn(width) if placement in ("p2", "all") else bn(width)
        self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = bfn(planes * 4) if placement in ("p3", "all") else bn(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNet(nn.Module):
    def __init__(self, block, layers, placement="bn", num_classes=1000, planes=(64, 128, 256, 512),
                 stem=64, groups=1, width_per_group=64, kaiming=False):
        super().__init__()
        self.placement, self.groups, self.base_width = placement, groups, width_per_group
        self.inplanes = stem
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        # The stem norm is my.Norm: GN in every XBN configuration, BN in the baseline.
        self.bn1 = my.Norm(stem) if placement != "bn" else nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], 2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], 2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if kaiming:  # resnext*.py
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                else:  # resnet*.py
                    n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                    m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            norm = my.Norm if self.placement == "all" else nn.BatchNorm2d
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                norm(planes * block.expansion))
        kw = dict(placement=self.placement, groups=self.groups, base_width=self.base_width)
        layers = [block(self.inplanes, planes, stride, downsample, **kw)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, 1, None, **kw))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


RESNET_LAYERS = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
                 50: (Bottleneck, [3, 4, 6, 3]), 101: (Bottleneck, [3, 4, 23, 3]),
                 152: (Bottleneck, [3, 8, 36, 3])}


# --------------------------------------------------------------------------
# MobileNetV2 (mobilenetV2.py, mobilenetV2_XBNBlock.py)
# --------------------------------------------------------------------------

def make_divisible(x, divisible_by=8):
    return int(math.ceil(x * 1.0 / divisible_by) * divisible_by)


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio, xbn):
        super().__init__()
        hidden_dim = int(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        dw_norm = my.Norm if xbn else nn.BatchNorm2d
        if expand_ratio == 1:
            self.conv = nn.Sequential(
                nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
                dw_norm(hidden_dim), nn.ReLU6(inplace=True),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))
        else:
            self.conv = nn.Sequential(
                nn.Conv2d(inp, hidden_dim, 1, 1, 0, bias=False), nn.BatchNorm2d(hidden_dim),
                nn.ReLU6(inplace=True),
                nn.Conv2d(hidden_dim, hidden_dim, 3, stride, 1, groups=hidden_dim, bias=False),
                dw_norm(hidden_dim), nn.ReLU6(inplace=True),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup))

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, n_class=1000, width_mult=1.0, xbn=False):
        super().__init__()
        input_channel, last_channel = 32, 1280
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                   [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        self.last_channel = make_divisible(last_channel * width_mult) if width_mult > 1.0 else last_channel
        self.features = [nn.Sequential(nn.Conv2d(3, input_channel, 3, 2, 1, bias=False),
                                       nn.BatchNorm2d(input_channel), nn.ReLU6(inplace=True))]
        for t, c, n, s in setting:
            output_channel = make_divisible(c * width_mult) if t > 1 else c
            for i in range(n):
                self.features.append(InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t, xbn))
                input_channel = output_channel
        self.features.append(nn.Sequential(nn.Conv2d(input_channel, self.last_channel, 1, 1, 0, bias=False),
                                           nn.BatchNorm2d(self.last_channel), nn.ReLU6(inplace=True)))
        self.features = nn.Sequential(*self.features)
        self.classifier = nn.Linear(self.last_channel, n_class)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()

    def forward(self, x):
        return self.classifier(self.features(x).mean(3).mean(2))


# --------------------------------------------------------------------------
# ShuffleNetV2, Megvii layout (shuffleV2.py, shuffleV2_XBNBlock.py)
# --------------------------------------------------------------------------

class ShuffleV2Block(nn.Module):
    def __init__(self, inp, oup, mid_channels, ksize, stride, xbn):
        super().__init__()
        self.stride = stride
        pad = ksize // 2
        outputs = oup - inp
        dw_norm = my.Norm if xbn else nn.BatchNorm2d
        self.branch_main = nn.Sequential(
            nn.Conv2d(inp, mid_channels, 1, 1, 0, bias=False), nn.BatchNorm2d(mid_channels), nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, mid_channels, ksize, stride, pad, groups=mid_channels, bias=False),
            dw_norm(mid_channels),
            nn.Conv2d(mid_channels, outputs, 1, 1, 0, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True))
        if stride == 2:
            self.branch_proj = nn.Sequential(
                nn.Conv2d(inp, inp, ksize, stride, pad, groups=inp, bias=False), dw_norm(inp),
                nn.Conv2d(inp, inp, 1, 1, 0, bias=False), nn.BatchNorm2d(inp), nn.ReLU(inplace=True))
        else:
            self.branch_proj = None

    def forward(self, old_x):
        if self.stride == 1:
            x_proj, x = self.channel_shuffle(old_x)
            return torch.cat((x_proj, self.branch_main(x)), 1)
        return torch.cat((self.branch_proj(old_x), self.branch_main(old_x)), 1)

    @staticmethod
    def channel_shuffle(x):
        b, c, h, w = x.data.size()
        x = x.reshape(b * c // 2, 2, h * w).permute(1, 0, 2).reshape(2, -1, c // 2, h, w)
        return x[0], x[1]


class ShuffleNetV2(nn.Module):
    SIZES = {"0.5x": [-1, 24, 48, 96, 192, 1024], "1.0x": [-1, 24, 116, 232, 464, 1024],
             "1.5x": [-1, 24, 176, 352, 704, 1024], "2.0x": [-1, 24, 244, 488, 976, 2048]}

    def __init__(self, n_class=1000, model_size="1.5x", xbn=False):
        super().__init__()
        self.stage_repeats = [4, 8, 4]
        self.model_size = model_size
        self.stage_out_channels = self.SIZES[model_size]
        input_channel = self.stage_out_channels[1]
        self.first_conv = nn.Sequential(nn.Conv2d(3, input_channel, 3, 2, 1, bias=False),
                                        nn.BatchNorm2d(input_channel), nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        features = []
        for s, numrepeat in enumerate(self.stage_repeats):
            output_channel = self.stage_out_channels[s + 2]
            for i in range(numrepeat):
                if i == 0:
                    features.append(ShuffleV2Block(input_channel, output_channel, output_channel // 2, 3, 2, xbn))
                else:
                    features.append(ShuffleV2Block(input_channel // 2, output_channel, output_channel // 2, 3, 1, xbn))
                input_channel = output_channel
        self.features = nn.Sequential(*features)
        self.conv_last = nn.Sequential(nn.Conv2d(input_channel, self.stage_out_channels[-1], 1, 1, 0, bias=False),
                                       nn.BatchNorm2d(self.stage_out_channels[-1]), nn.ReLU(inplace=True))
        self.globalpool = nn.AvgPool2d(7)
        if self.model_size == "2.0x":
            self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Sequential(nn.Linear(self.stage_out_channels[-1], n_class, bias=False))
        for name, m in self.named_modules():
            if isinstance(m, nn.Conv2d):
                if "first" in name:
                    nn.init.normal_(m.weight, 0, 0.01)
                else:
                    nn.init.normal_(m.weight, 0, 1.0 / m.weight.shape[1])
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0.0001)
                nn.init.constant_(m.running_mean, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)

    def forward(self, x):
        x = self.maxpool(self.first_conv(x))
        x = self.conv_last(self.features(x))
        x = self.globalpool(x)
        if self.model_size == "2.0x":
            x = self.dropout(x)
        return self.classifier(x.contiguous().view(-1, self.stage_out_channels[-1]))


# --------------------------------------------------------------------------
# The registry, as xbn names it
# --------------------------------------------------------------------------

def build(name, num_classes=1000):
    """The authors' network for an xbn registry name (with the scripts' norm configs)."""
    suffixes = [("-xbn-p1", "p1"), ("-xbn-p2", "p2"), ("-xbn-p3", "p3"), ("-xbn", "p2"), ("-gn", "all")]
    arch, placement = name, "bn"
    for suf, p in suffixes:
        if name.endswith(suf):
            arch, placement = name[: -len(suf)], p
            break
    if arch.startswith("resnext"):
        groups, width = (32, 4) if arch == "resnext50-32x4d" else (32, 8)
        layers = [3, 4, 6, 3] if arch == "resnext50-32x4d" else [3, 4, 23, 3]
        set_norm("GN", 32 if placement == "all" else 64)
        return ResNet(Bottleneck, layers, placement, num_classes, groups=groups, width_per_group=width, kaiming=True)
    if arch.startswith("resnet"):
        block, layers = RESNET_LAYERS[int(arch[6:])]
        set_norm("GN", 32 if placement == "all" else 64)
        return ResNet(block, layers, placement, num_classes)
    if arch == "mobilenet-v2":
        set_norm("GN", 16)
        return MobileNetV2(num_classes, 1.0, placement != "bn")
    if arch.startswith("shufflenet-v2-"):
        size = arch[len("shufflenet-v2-"):]
        set_norm("GN", {"1.0x": 29, "2.0x": 61}.get(size, 8))
        return ShuffleNetV2(num_classes, size, placement != "bn")
    raise ValueError(name)


REGISTERED = (
    [f"resnet{d}{s}" for d in (18, 34, 50, 101, 152) for s in ("", "-xbn-p1", "-xbn-p2", "-xbn-p3", "-gn")]
    + [f"{a}{s}" for a in ("resnext50-32x4d", "resnext101-32x8d") for s in ("", "-xbn", "-gn")]
    + ["mobilenet-v2", "mobilenet-v2-xbn"]
    + [f"shufflenet-v2-{z}{s}" for z in ("0.5x", "1.0x", "1.5x", "2.0x") for s in ("", "-xbn")]
)


def stats(model):
    params = sum(p.numel() for p in model.parameters())
    bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    gn = [f"{m.num_groups}/{m.num_channels}" for m in model.modules() if isinstance(m, nn.GroupNorm)]
    macs = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            macs[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            macs[0] += m.in_features * m.out_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in hooks:
        h.remove()
    return {"params": params, "bn_layers": bn, "gn_layers": len(gn), "gn_groups_channels": gn,
            "state_dict_keys": len(model.state_dict()), "macs_224": macs[0]}


def counts():
    out = {}
    for name in REGISTERED:
        torch.manual_seed(0)
        out[name] = stats(build(name))
        print(name, out[name]["params"], file=sys.stderr)
    with open(os.path.join(ROOT, "zoo_counts.json"), "w") as f:
        json.dump(out, f, indent=1, sort_keys=True)


# --------------------------------------------------------------------------
# Parity fixtures: small models, 3 SGD steps, eval-mode logits
# --------------------------------------------------------------------------

def train_steps(model, shape, classes, steps=3):
    """3 SGD steps, then 20 training-mode forwards without updates: the running statistics
    move far from their initial values and close to the data's, so the eval-mode logits
    stay of order one (the Megvii initialisation gives huge ones otherwise)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, *shape) * 1.5 + 0.3
        y = torch.randint(0, classes, (8,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        for _ in range(20):
            model(torch.randn(8, *shape) * 1.5 + 0.3)


def parity_case(case, model, shape, xbn_config, wrap, classes=10):
    """`wrap`: how the weights are stored: "pth" (bare state dict), "pth-dp" (DataParallel
    `module.` prefix inside {"state_dict": ...}), "safetensors"."""
    train_steps(model, shape, classes)
    model.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        logits = model(x)
    out = os.path.join(ROOT, "zoo")
    os.makedirs(out, exist_ok=True)
    sd = model.state_dict()
    if wrap == "pth":
        torch.save(sd, os.path.join(out, f"{case}.pth"))
    elif wrap == "pth-dp":
        torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
                   os.path.join(out, f"{case}.pth"))
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, f"{case}.safetensors"))
    save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(out, f"{case}.io.safetensors"))
    with open(os.path.join(out, f"{case}.json"), "w") as f:
        json.dump(xbn_config, f, indent=1)
    size = sum(v.numel() for v in sd.values())
    print(f"{case}: {size} tensor elements, logits {tuple(logits.shape)}", file=sys.stderr)


def small_resnet(block, placement, planes, groups=1, width=64, gn=8):
    set_norm("GN", 32 if placement == "all" else gn)
    return ResNet(block, [1, 1, 1, 1], placement, 10, planes=planes, stem=16, groups=groups,
                  width_per_group=width, kaiming=groups > 1)


def parity():
    torch.manual_seed(1)
    small, wide = [4, 8, 16, 32], [8, 16, 32, 64]
    rs = lambda block, plan, planes, groups=1, width=64, bfn="gn:8": {
        "family": "resnet", "block": block, "layers": [1, 1, 1, 1], "planes": planes,
        "stem_channels": 16, "stem": "imagenet", "shortcut": "B", "in_channels": 3, "num_classes": 10,
        "groups": groups, "width_per_group": width, "placement": plan, "bfn": bfn}
    shape = (3, 32, 32)
    parity_case("resnet_bottleneck_bn", small_resnet(Bottleneck, "bn", small), shape,
                rs("bottleneck", "bn", small), "pth")
    parity_case("resnet_bottleneck_xbn_p2", small_resnet(Bottleneck, "p2", small), shape,
                rs("bottleneck", "xbn-p2", small), "pth-dp")
    parity_case("resnet_basic_xbn_p3", small_resnet(BasicBlock, "p3", small), shape,
                rs("basic", "xbn-p3", small), "safetensors")
    parity_case("resnext_bn", small_resnet(Bottleneck, "bn", wide, 4, 8), shape,
                rs("bottleneck", "bn", wide, 4, 8), "pth")
    parity_case("resnext_xbn_p2", small_resnet(Bottleneck, "p2", wide, 4, 8), shape,
                rs("bottleneck", "xbn-p2", wide, 4, 8), "pth")
    parity_case("resnext_gn", small_resnet(Bottleneck, "all", wide, 4, 8), shape,
                rs("bottleneck", "all", wide, 4, 8, "gn:32"), "pth")
    set_norm("GN", 16)
    parity_case("mobilenet_v2_xbn", MobileNetV2(10, 0.25, True), shape,
                {"family": "mobilenet_v2", "width_mult": 0.25, "num_classes": 10,
                 "placement": "xbn-p2", "bfn": "gn:16"}, "pth")
    for xbn in (False, True):
        set_norm("GN", 8)
        tag = "xbn" if xbn else "bn"
        model = ShuffleNetV2(10, "0.5x", xbn)
        # The authors pool with AvgPool2d(7) (224x224 only); xbn averages the whole map,
        # the same at 224x224. Averaging here too lets the fixture use 32x32 inputs.
        model.globalpool = nn.AdaptiveAvgPool2d(1)
        parity_case(f"shufflenet_v2_{tag}", model, shape,
                    {"family": "shufflenet_v2", "size": "0.5x", "num_classes": 10,
                     "placement": "xbn-p2" if xbn else "bn", "bfn": "gn:8"}, "pth" if xbn else "safetensors")
    # The authors' checkpoint format (extension/checkpoint.py): {"model": state_dict,
    # "optimizer": ..., "epoch": ...}, here without num_batches_tracked (checkpoints older
    # than PyTorch 0.4.1 lack it).
    torch.manual_seed(3)
    m = small_resnet(Bottleneck, "bn", small)
    train_steps(m, shape, 10)
    m.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        logits = m(x)
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    nn.functional.cross_entropy(m(torch.randn(4, *shape)), torch.randint(0, 10, (4,))).backward()
    opt.step()  # creates momentum buffers, as a real checkpoint has
    with torch.no_grad():
        m.load_state_dict({k: v for k, v in m.state_dict().items()}, strict=True)
    out = os.path.join(ROOT, "zoo")
    sd = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    # The weights after the optimizer step are what the checkpoint holds; recompute logits.
    m.eval()
    with torch.no_grad():
        logits = m(x)
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3, "best_prec1": 12.5},
               os.path.join(out, "resnet_checkpoint_dict.pth"))
    save_file({"input": x.contiguous(), "logits": logits.contiguous()},
              os.path.join(out, "resnet_checkpoint_dict.io.safetensors"))
    with open(os.path.join(out, "resnet_checkpoint_dict.json"), "w") as f:
        json.dump(rs("bottleneck", "bn", small), f, indent=1)

    # torchvision naming of MobileNetV2: the authors' weights under torchvision's keys.
    set_norm("GN", 16)
    torch.manual_seed(2)
    m = MobileNetV2(10, 0.25, False)
    train_steps(m, (3, 32, 32), 10)
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = m(x)
    sd = {}
    for k, v in m.state_dict().items():
        parts = k.split(".")
        if parts[0] == "classifier":
            k = "classifier.1." + parts[1]
        elif parts[0] == "features" and parts[2] == "conv":
            i, j = int(parts[1]), int(parts[3])
            expand = i != 1
            table = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"} if expand else \
                {0: "0.0", 1: "0.1", 3: "1", 4: "2"}
            k = ".".join(["features", parts[1], "conv", table[j]] + parts[4:])
        sd[k] = v
    out = os.path.join(ROOT, "zoo")
    torch.save(sd, os.path.join(out, "mobilenet_v2_torchvision_names.pth"))
    save_file({"input": x.contiguous(), "logits": logits.contiguous()},
              os.path.join(out, "mobilenet_v2_torchvision_names.io.safetensors"))
    with open(os.path.join(out, "mobilenet_v2_torchvision_names.json"), "w") as f:
        json.dump({"family": "mobilenet_v2", "width_mult": 0.25, "num_classes": 10, "placement": "bn",
                   "bfn": "gn:16", "naming": "torchvision"}, f, indent=1)


def preprocess_case():
    """A 200x300 PNG and torchvision's evaluation transform of it (Resize(64),
    CenterCrop(56), ToTensor, Normalize(ImageNet)), for xbn's `preprocess`."""
    import numpy as np
    from PIL import Image
    import torchvision.transforms as T
    h, w = 200, 300
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 255 // w), (yy * 255 // h), ((xx // 20 + yy // 20) % 2) * 200 + 20], -1).astype(np.uint8)
    out = os.path.join(ROOT, "images")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "pattern_300x200.png")
    Image.fromarray(img).save(path)
    t = T.Compose([T.Resize(64), T.CenterCrop(56), T.ToTensor(),
                   T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    x = t(Image.open(path).convert("RGB"))
    save_file({"pixels": x.contiguous()}, os.path.join(out, "pattern_300x200.torchvision.safetensors"))
    print("preprocess fixture", tuple(x.shape), file=sys.stderr)


if __name__ == "__main__":
    torch.set_num_threads(2)
    what = sys.argv[1:] or ["counts", "parity", "preprocess"]
    if "counts" in what:
        counts()
    if "parity" in what:
        parity()
    if "preprocess" in what:
        preprocess_case()

