"""Which published Coral latencies calibrate the Edge TPU profiles, and why the others do not.

`python -m latency_models.published ../shared/data/edgetpu_published.csv` sorts every row of the
published table into `data/edgetpu_calibration.csv` (rows used, with the device profile, the network
reference and how that network is built) and `data/edgetpu_excluded.csv` (rows left out, each with
its reason). The rules are here so that the sorting can be read and re-run, not redone by hand.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

DATA = Path(__file__).with_name("data")
USED_PATH, EXCLUDED_PATH = DATA / "edgetpu_calibration.csv", DATA / "edgetpu_excluded.csv"

DEVICES = {
    "USB Accelerator (USB3.0) + desktop CPU": "edgetpu_usb",
    "USB Accelerator (USB3.0) + Xeon E5-1650 v3": "edgetpu_usb",
    "coral.ai models-page reference system (footnote 1)": "edgetpu_usb",
    "Dev Board": "edgetpu_devboard",
    "Dev Board, C++ API": "edgetpu_devboard",
    "Dev Board (max freq)": "edgetpu_devboard",
}
"""Published hosts that are the profiles' devices. The models-page system is taken as the USB 3 desktop:
its five networks also in Table 1 (Inception v1 and v4, EfficientNet-EdgeTPU-S, SSD MobileNet v1 and v2)
agree with Table 1's USB column within 2%, and differ from its Dev Board column by up to 2x."""

DEVICE_EXCLUSIONS = (
    ("end-to-end", "end-to-end timing with pre- and post-processing"),
    ("USB2", "USB 2 link"),
    ("Raspberry Pi", "another host (Raspberry Pi), neither profile's"),
    ("Python API", "timed in a Python loop with its interpreter overhead (the same author's C++ figures differ "
                   "by 0.2-0.5 ms)"),
    ("std clock", "reduced clock (libedgetpu std runtime, 250 MHz)"),
    ("MacBook", "another host (a laptop), neither profile's"),
)

NETWORKS: tuple[tuple[str, str, int | None, str], ...] = (
    (r"mobilenet ?v1( \(|$)", "keras.applications.MobileNet", None, "keras.applications"),
    (r"mobilenet ?v2$", "keras.applications.MobileNetV2", None, "keras.applications"),
    (r"inception v1$", "build.inception_v1", None, "latency_models.builds (TF-slim inception_v1)"),
    (r"inception v4$", "build.inception_v4", None, "latency_models.builds (TF-slim inception_v4)"),
    (r"inception-resnet v2$", "keras.applications.InceptionResNetV2", None, "keras.applications"),
    (r"resnet-50 v1$", "keras.applications.ResNet50", None, "keras.applications (ResNet v1)"),
    (r"squeezenet$", "build.squeezenet_1_0", None, "latency_models.builds (SqueezeNet 1.0 reference prototxt)"),
    (r"vgg16$", "keras.applications.VGG16", None, "keras.applications"),
    (r"efficientnet-edgetpu-s$", "efficientnet_edgetpu_s (width 1.0 depth 1.0)", None,
     "search_spaces reference (tensorflow/tpu efficientnet_edgetpu_builder)"),
    (r"densenet$", "keras.applications.DenseNet121", None, "keras.applications (DenseNet 121 assumed)"),
    (r"u-?net mobilenet ?v2$", "build.unet_mobilenet_v2", None,
     "latency_models.builds (TensorFlow segmentation tutorial U-Net)"),
    (r"(mobilenet v1 ssd|ssd mobilenet v1 \(coco\)|ssd mobilenet v1 coco \(postprocess\))$",
     "build.ssd_mobilenet_v1", 300, "latency_models.builds (TF1 Object Detection API, postprocess on CPU)"),
    (r"(mobilenet v2 ssd|ssd mobilenet v2 \(coco\)|ssd mobilenet v2 coco \(postprocess\))$",
     "build.ssd_mobilenet_v2", 300, "latency_models.builds (TF1 Object Detection API, postprocess on CPU)"),
    (r"ssdlite mobilenet v1$", "build.ssdlite_mobilenet_v1", None,
     "latency_models.builds (TF1 Object Detection API SSDLite, postprocess on CPU)"),
    (r"ssdlite mobilenet v2$", "build.ssdlite_mobilenet_v2", None,
     "latency_models.builds (TF1 Object Detection API SSDLite, postprocess on CPU)"),
)
"""(pattern on the lower-cased published name, reference, input size when the row's is wrong, how built).
Coral's SSD models take 300 px; Table 1 labels them 224."""

NOT_BUILT = (
    ("deeplab v3$", "backbone not stated on the page: its network cannot be rebuilt"),
    ("faces", "face detector's configuration unknown: SSD MobileNet v2 with 2 classes has 4.6 M parameters "
              "against the 6.7 MB compiled model"),
    ("tf2|fpn", "TF2 / FPN detector graph not rebuilt faithfully here"),
    ("mobiledet|mobilenetedgetpu|spaghettinet|efficientdet", "searched or BiFPN detector not rebuilt here"),
    ("deeplab", "segmentation head (output stride, ASPP variant, argmax) not rebuilt faithfully here"),
    ("posenet|bodypix", "custom decoder op on the CPU of unknown cost; output-stride-16 backbone not rebuilt"),
    ("movenet", "TF2 MoveNet heads and ops not rebuilt faithfully here"),
    ("inception v2", "only end-to-end timings published"),
)


LINK_CEILING_MB_PER_S = 500.0
"""The fastest any Edge TPU host link can move streamed parameters: the chip's host interfaces are PCIe Gen2 x1,
USB 2.0 and USB 3.1 Gen 1 (Coral Accelerator Module datasheet), the fastest of them 5 Gb/s with 8b/10b coding,
500 MB/s before protocol overhead. (VGG16, 130 MB streamed, measures 296 ms on USB: ~440 MB/s.)"""


def link_bound_reason(reference: str, input_size: int, width: float | None, latency_ms: float) -> str | None:
    """Why a row cannot time the network rebuilt for it: its parameters beyond the cache could not cross the link
    in the published time even at the link's line rate. None when the row is physically possible."""
    from latency_models import edgetpu
    from latency_models.calibration import DEFAULT_EDGETPU_FIXED
    from latency_models.features import layer_table
    from latency_models.networks import network_layers
    from latency_models.profiles import DeviceProfile

    profile = DeviceProfile("bound", "edgetpu", "", edgetpu.PRIOR | {"host_ms_per_melement": 5.0},
                            DEFAULT_EDGETPU_FIXED)
    streamed = edgetpu.streamed_bytes(layer_table(network_layers(reference, input_size, width)), profile)
    floor_ms = streamed / (LINK_CEILING_MB_PER_S * 1e3)
    if latency_ms >= floor_ms:
        return None
    return (f"faster than physically possible for the network rebuilt: its {streamed / 1e6:.0f} MB of parameters "
            f"beyond the cache take at least {floor_ms:.0f} ms at the link's {LINK_CEILING_MB_PER_S:.0f} MB/s line "
            "rate, so the network timed cannot be the one rebuilt")


def _network(name: str) -> tuple[str, int | None, str] | None:
    low = name.lower().strip()
    for pattern, ref, size, how in NETWORKS:
        if re.match(pattern, low):
            return ref, size, how
    return None


def _why_not_built(name: str) -> str:
    low = name.lower()
    for pattern, reason in NOT_BUILT:
        if re.search(pattern, low):
            return reason
    return "network not identified"


def sort_rows(published: Path) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(used, excluded) rows of the published table, by the rules above."""
    used, excluded = [], []
    with open(published, newline="") as f:
        for row in csv.DictReader(f):
            base = {"model": row["model"], "input_size": row["input_size"], "published_device": row["device"],
                    "latency_ms": row["latency_ms"], "trust": row["trust"], "source": row["source"]}
            device = DEVICES.get(row["device"])
            reason = next((why for key, why in DEVICE_EXCLUSIONS if key in row["device"]), None)
            network = _network(row["model"])
            if reason is None and device is None:
                reason = "host not identified"
            if reason is None and network is None:
                reason = _why_not_built(row["model"])
            if reason is not None or device is None or network is None:
                excluded.append({**base, "reason": reason or ""})
                continue
            ref, size, how = network
            width = row["width_multiplier"].split()[0] if row["width_multiplier"] else ""
            bound = link_bound_reason(ref, int(size or row["input_size"]), float(width) if width else None,
                                      float(row["latency_ms"]))
            if bound is not None:
                excluded.append({**base, "reason": bound})
                continue
            used.append({"model": row["model"], "reference": ref, "input_size": str(size or row["input_size"]),
                         "width_multiplier": width, "device": device, "latency_ms": row["latency_ms"],
                         "trust": row["trust"], "built_with": how, "published_device": row["device"],
                         "source": row["source"]})
    return used, excluded


def write(published: Path, used_path: Path = USED_PATH, excluded_path: Path = EXCLUDED_PATH) -> tuple[int, int]:
    used, excluded = sort_rows(published)
    for path, rows in ((used_path, used), (excluded_path, excluded)):
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return len(used), len(excluded)


if __name__ == "__main__":
    n_used, n_excluded = write(Path(sys.argv[1]))
    print(f"{n_used} rows used ({USED_PATH}), {n_excluded} left out ({EXCLUDED_PATH})")
