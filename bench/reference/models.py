"""Reference models; module / state-dict names match freeadv's."""
import torch
import torch.nn as nn
import torch.nn.functional as F

FMNIST = ((0.2860,), (0.3530,))
CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class TwoConvNet(nn.Module):
    """conv(k, c1) → ReLU → pool 2 → conv(k, c2) → ReLU → pool 2 → fc(hidden) → ReLU → fc; Fashion-MNIST stats."""

    def __init__(self, c1, c2, kernel, hidden, num_classes=10):
        super().__init__()
        self.norm = Normalize(*FMNIST)
        self.conv1 = nn.Conv2d(1, c1, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(c1, c2, kernel, padding=kernel // 2)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(self.norm(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class SmallCNN(TwoConvNet):
    def __init__(self, num_classes=10):
        super().__init__(16, 32, 3, 128, num_classes)


class MadryCNN(TwoConvNet):  # the MNIST-challenge CNN
    def __init__(self, num_classes=10):
        super().__init__(32, 64, 5, 1024, num_classes)


class PreActBlock(nn.Module):  # locuslab/fast_adversarial preact_resnet.py
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.norm = Normalize(*CIFAR10)
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        planes, layers = 64, []
        for i, (p, s) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            blocks = [PreActBlock(planes, p, s), PreActBlock(p, p, 1)]
            planes = p
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = self.conv1(self.norm(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.linear(out)


class BasicBlock(nn.Module):  # post-activation CIFAR ResNet block (He et al.)
    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifarSmall(nn.Module):
    """~12.4M MACs (~25 MFLOP)/image: conv 3->16, stages of one BasicBlock at 16/32/64 ch, GAP, fc."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.norm = Normalize(*CIFAR10)
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, 2))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(self.norm(x))))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


class WideBasic(nn.Module):  # the Wide ResNet block of the robustness literature (block1.layer.0.*)
    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, 1, 1, bias=False)
        self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, stride, bias=False) if in_planes != out_planes else None

    def forward(self, x):
        o = F.relu(self.bn1(x))
        h = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return h + (self.convShortcut(o) if self.convShortcut is not None else x)


class WideStage(nn.Module):
    def __init__(self, n, in_planes, out_planes, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WideBasic(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1) for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):  # depth 34, width 10: the paper's "WRN 32-10"
    def __init__(self, num_classes=10, depth=34, k=10):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.norm = Normalize(*CIFAR10)
        self.conv1 = nn.Conv2d(3, ch[0], 3, 1, 1, bias=False)
        self.block1 = WideStage(n, ch[0], ch[1], 1)
        self.block2 = WideStage(n, ch[1], ch[2], 2)
        self.block3 = WideStage(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)

    def forward(self, x):
        h = self.block3(self.block2(self.block1(self.conv1(self.norm(x)))))
        return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn1(h)), 1).flatten(1))


def resnet50(num_classes=10):
    import torchvision  # Debian's python3-torchvision; only this model needs it
    return torchvision.models.resnet50(num_classes=num_classes)


MODELS = {"small-cnn": SmallCNN, "madry-cnn": MadryCNN,
          "preact-resnet18": PreActResNet18, "resnet-cifar-small": ResNetCifarSmall, "wrn-34-10": WideResNet,
          "wrn-28-10": lambda num_classes=10: WideResNet(num_classes, depth=28), "resnet50": resnet50}
INPUT_SHAPE = {"small-cnn": (1, 28, 28), "madry-cnn": (1, 28, 28),
               "preact-resnet18": (3, 32, 32), "resnet-cifar-small": (3, 32, 32), "wrn-34-10": (3, 32, 32),
               "wrn-28-10": (3, 32, 32), "resnet50": (3, 224, 224)}


def build(name, num_classes=10):
    return MODELS[name](num_classes)
