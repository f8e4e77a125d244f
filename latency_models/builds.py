"""Published Edge TPU networks that `keras.applications` lacks, rebuilt layer for layer with Keras layers.

Each builder follows the definition Coral's compiled models were made from (cited per builder);
weights are irrelevant to latency, so none are loaded. A calibration row names a build as
`build.<name>` in its `reference` column (see `networks.py`). SSD builds stop at the box
predictors and add one `detection_postprocess` layer for the TFLite_Detection_PostProcess op,
which the compiler leaves to the host CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _conv(x: Any, filters: int, kernel: int | tuple[int, int], stride: int = 1, padding: str = "same",
          bn: bool = True) -> Any:
    from keras import layers

    x = layers.Conv2D(filters, kernel, strides=stride, padding=padding, use_bias=not bn)(x)
    if bn:
        x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def _cat(xs: list[Any]) -> Any:
    from keras import layers

    return layers.Concatenate()(xs)


def _pool(x: Any, size: int = 3, stride: int = 2, padding: str = "valid", avg: bool = False) -> Any:
    from keras import layers

    cls = layers.AveragePooling2D if avg else layers.MaxPooling2D
    return cls(size, strides=stride, padding=padding)(x)


def _classifier_head(x: Any, classes: int = 1001) -> Any:
    from keras import layers

    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dense(classes, activation="softmax")(x)


def squeezenet(input_size: int, version: str = "1.0") -> Any:
    """SqueezeNet 1.0 or 1.1 (Iandola et al. 2016; the DeepScale/SqueezeNet reference prototxts):
    fire modules of a 1x1 squeeze and concatenated 1x1 / 3x3 expands, no batch-norm, conv10 classifier."""
    import keras
    from keras import layers

    def fire(x: Any, squeeze: int, expand: int) -> Any:
        s = _conv(x, squeeze, 1, bn=False)
        return _cat([_conv(s, expand, 1, bn=False), _conv(s, expand, 3, bn=False)])

    inp = keras.Input((input_size, input_size, 3))
    if version == "1.0":
        x = _pool(_conv(inp, 96, 7, 2, "valid", bn=False))
        x = fire(fire(fire(x, 16, 64), 16, 64), 32, 128)
        x = _pool(x)
        x = fire(fire(fire(fire(x, 32, 128), 48, 192), 48, 192), 64, 256)
        x = fire(_pool(x), 64, 256)
    else:
        x = _pool(_conv(inp, 64, 3, 2, "valid", bn=False))
        x = _pool(fire(fire(x, 16, 64), 16, 64))
        x = _pool(fire(fire(x, 32, 128), 32, 128))
        x = fire(fire(fire(fire(x, 48, 192), 48, 192), 64, 256), 64, 256)
    x = _conv(x, 1000, 1, bn=False)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Softmax()(x))


def inception_v1(input_size: int) -> Any:
    """GoogLeNet as TF-slim's `inception_v1` (batch-norm; its 'Branch_2' uses a 3x3, not a 5x5, convolution)."""
    import keras

    def mixed(x: Any, b0: int, b1: tuple[int, int], b2: tuple[int, int], b3: int) -> Any:
        return _cat([_conv(x, b0, 1), _conv(_conv(x, b1[0], 1), b1[1], 3), _conv(_conv(x, b2[0], 1), b2[1], 3),
                     _conv(_pool(x, 3, 1, "same"), b3, 1)])

    inp = keras.Input((input_size, input_size, 3))
    x = _pool(_conv(inp, 64, 7, 2), 3, 2, "same")
    x = _pool(_conv(_conv(x, 64, 1), 192, 3), 3, 2, "same")
    x = mixed(x, 64, (96, 128), (16, 32), 32)
    x = mixed(x, 128, (128, 192), (32, 96), 64)
    x = _pool(x, 3, 2, "same")
    for spec in ((192, (96, 208), (16, 48), 64), (160, (112, 224), (24, 64), 64), (128, (128, 256), (24, 64), 64),
                 (112, (144, 288), (32, 64), 64), (256, (160, 320), (32, 128), 128)):
        x = mixed(x, *spec)
    x = _pool(x, 2, 2, "same")
    x = mixed(x, 256, (160, 320), (32, 128), 128)
    x = mixed(x, 384, (192, 384), (48, 128), 128)
    return keras.Model(inp, _classifier_head(x))


def inception_v4(input_size: int) -> Any:
    """Inception v4 as TF-slim's `inception_v4` (Szegedy et al. 2016, figures 3-9)."""
    import keras

    inp = keras.Input((input_size, input_size, 3))
    x = _conv(_conv(_conv(inp, 32, 3, 2, "valid"), 32, 3, 1, "valid"), 64, 3)
    x = _cat([_pool(x), _conv(x, 96, 3, 2, "valid")])
    x = _cat([_conv(_conv(x, 64, 1), 96, 3, 1, "valid"),
              _conv(_conv(_conv(_conv(x, 64, 1), 64, (1, 7)), 64, (7, 1)), 96, 3, 1, "valid")])
    x = _cat([_conv(x, 192, 3, 2, "valid"), _pool(x)])
    for _ in range(4):
        x = _cat([_conv(x, 96, 1), _conv(_conv(x, 64, 1), 96, 3), _conv(_conv(_conv(x, 64, 1), 96, 3), 96, 3),
                  _conv(_pool(x, 3, 1, "same", avg=True), 96, 1)])
    x = _cat([_conv(x, 384, 3, 2, "valid"), _conv(_conv(_conv(x, 192, 1), 224, 3), 256, 3, 2, "valid"), _pool(x)])
    for _ in range(7):
        b1 = _conv(_conv(_conv(x, 192, 1), 224, (1, 7)), 256, (7, 1))
        b2 = _conv(_conv(_conv(_conv(_conv(x, 192, 1), 192, (7, 1)), 224, (1, 7)), 224, (7, 1)), 256, (1, 7))
        x = _cat([_conv(x, 384, 1), b1, b2, _conv(_pool(x, 3, 1, "same", avg=True), 128, 1)])
    x = _cat([_conv(_conv(x, 192, 1), 192, 3, 2, "valid"),
              _conv(_conv(_conv(_conv(x, 256, 1), 256, (1, 7)), 320, (7, 1)), 320, 3, 2, "valid"), _pool(x)])
    for _ in range(3):
        b1 = _conv(x, 384, 1)
        b2 = _conv(_conv(_conv(x, 384, 1), 448, (3, 1)), 512, (1, 3))
        x = _cat([_conv(x, 256, 1), _conv(b1, 256, (1, 3)), _conv(b1, 256, (3, 1)), _conv(b2, 256, (1, 3)),
                  _conv(b2, 256, (3, 1)), _conv(_pool(x, 3, 1, "same", avg=True), 256, 1)])
    return keras.Model(inp, _classifier_head(x))


def unet_mobilenet_v2(input_size: int, classes: int = 3) -> Any:
    """The TensorFlow image-segmentation tutorial's U-Net (Coral's `keras_post_training_unet_mv2`): a
    MobileNetV2 encoder tapped at block_1/3/6/13 expand ReLUs and block_16_project, a pix2pix decoder of
    3x3 stride-2 transposed convolutions (512, 256, 128, 64, batch-norm, ReLU) each concatenated with its
    skip, and a final 3x3 stride-2 transposed convolution to `classes` channels."""
    import keras
    from keras import layers

    base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), include_top=False, weights=None)
    taps = [base.get_layer(n).output for n in ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                                               "block_13_expand_relu", "block_16_project")]
    x = taps[-1]
    for filters, skip in zip((512, 256, 128, 64), reversed(taps[:-1]), strict=True):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = _cat([x, skip])
    x = layers.Conv2DTranspose(classes, 3, strides=2, padding="same")(x)
    return keras.Model(base.input, x)


def _ssd_head(maps: list[Any], anchors: list[int], classes: int, depthwise: bool) -> Any:
    """Box encodings and class scores of every anchor (the Object Detection API's convolutional box
    predictor; SSDLite's is a 3x3 depthwise convolution then a 1x1), their logistic, and the postprocess."""
    from keras import layers

    boxes: list[Any] = []
    scores: list[Any] = []
    for fmap, a in zip(maps, anchors, strict=True):
        for out, dest in ((4 * a, boxes), (classes * a, scores)):
            y = fmap
            if depthwise:
                y = layers.ReLU(6.0)(layers.BatchNormalization()(
                    layers.DepthwiseConv2D(3, padding="same", use_bias=False)(y)))
            y = layers.Conv2D(out, 1)(y)
            dest.append(layers.Reshape((-1, out // a))(y))
    box = layers.Concatenate(axis=1)(boxes)
    score = layers.Activation("sigmoid")(layers.Concatenate(axis=1)(scores))
    return DetectionPostprocess()([box, score])


def _ssd_extra(x: Any, depthwise: bool) -> list[Any]:
    """The four extra feature maps of the SSD feature extractors (depths 512, 256, 256, 128, each a 1x1 at
    half depth then a stride-2 3x3; SSDLite: that 3x3 depthwise followed by a 1x1)."""
    from keras import layers

    maps = []
    for depth in (512, 256, 256, 128):
        x = _conv(x, depth // 2, 1)
        if depthwise:
            x = layers.ReLU(6.0)(layers.BatchNormalization()(
                layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(x)))
            x = _conv(x, depth, 1)
        else:
            x = _conv(x, depth, 3, 2)
        maps.append(x)
    return maps


def _slim_mobilenet_v1(input_size: int) -> tuple[Any, Any, Any]:
    """TF-slim's MobileNet v1 body (what the Object Detection API's SSD extracts features from): SAME padding,
    so a 300 px input runs at 150, 75, 38, 19 and 10 px. keras.applications.MobileNet pads one pixel on the
    bottom-right and convolves VALID (37, 18 and 9 px at 300). Returns the model, Conv2d_11 and Conv2d_13
    pointwise outputs."""
    import keras
    from keras import layers

    def relu6(y: Any) -> Any:
        return layers.ReLU(6.0)(layers.BatchNormalization()(y))

    inp = keras.Input((input_size, input_size, 3))
    x = relu6(layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(inp))
    taps = []
    for filters, stride in ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                            (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)):
        x = relu6(layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x))
        x = relu6(layers.Conv2D(filters, 1, use_bias=False)(x))
        taps.append(x)
    return keras.Model(inp, x), taps[10], taps[12]


def ssd_mobilenet(input_size: int, version: int = 1, classes: int = 91, lite: bool = False) -> Any:
    """SSD MobileNet v1 / v2 (and SSDLite) as the TF1 Object Detection API builds them for COCO: feature
    maps at Conv2d_11 / Conv2d_13 pointwise (v1) or layer_15 expansion / layer_19 (v2), four extra maps,
    3 anchors on the first map and 6 on the others, `classes` including background. TF-slim counts the stem
    convolution as layer_1 and the first inverted residual as layer_2, so its layer_15 expansion is Keras's
    block_13_expand (19x19 at 300 px, before the stride-2 depthwise): 1,917 anchors, as for v1."""
    import keras

    if version == 1:
        base, first, last = _slim_mobilenet_v1(input_size)
    else:
        base = keras.applications.MobileNetV2(input_shape=(input_size, input_size, 3), include_top=False,
                                              weights=None)
        first, last = base.get_layer("block_13_expand_relu").output, base.output
    maps = [first, last, *_ssd_extra(last, lite)]
    return keras.Model(base.input, _ssd_head(maps, [3, 6, 6, 6, 6, 6], classes, lite))


def _postprocess_layer() -> type:
    from keras import layers, ops

    class _DetectionPostprocess(layers.Layer):  # type: ignore[misc]
        """Stands for TFLite_Detection_PostProcess (decode, non-max suppression) in the layer IR."""

        def call(self, inputs: list[Any]) -> Any:
            return ops.concatenate([inputs[0][:, :100], inputs[1][:, :100, :1]], axis=-1)

    return _DetectionPostprocess


def DetectionPostprocess() -> Any:  # noqa: N802 - stands for a layer class
    return _postprocess_layer()()


BUILDERS: dict[str, Callable[[int], Any]] = {
    "squeezenet_1_0": lambda s: squeezenet(s, "1.0"),
    "squeezenet_1_1": lambda s: squeezenet(s, "1.1"),
    "inception_v1": inception_v1,
    "inception_v4": inception_v4,
    "unet_mobilenet_v2": unet_mobilenet_v2,
    "ssd_mobilenet_v1": lambda s: ssd_mobilenet(s, 1),
    "ssd_mobilenet_v2": lambda s: ssd_mobilenet(s, 2),
    "ssdlite_mobilenet_v1": lambda s: ssd_mobilenet(s, 1, lite=True),
    "ssdlite_mobilenet_v2": lambda s: ssd_mobilenet(s, 2, lite=True),
}
"""`build.<name>` references, each a function of the input size."""
