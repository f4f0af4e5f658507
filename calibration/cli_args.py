"""The INT8 calibration argument group of `pem calibrate` and `pem build-engine`, and the
:class:`~calibration.calibrate.CalibrationConfig` it fills."""

from __future__ import annotations

import argparse
from pathlib import Path

from calibration.calibrate import CalibrationConfig
from calibration.ranges import METHODS
from pem_rt.errors import PemError


def add_calibration_args(parser: argparse.ArgumentParser) -> None:
    """The INT8 calibration flags (pem calibrate, pem build-engine); read by :func:`config_from_args`."""
    g = parser.add_argument_group("INT8 calibration")
    g.add_argument(
        "--calib-data",
        default=None,
        help="image folder, video file, or 'skimage' (scikit-image's bundled photos)",
    )
    g.add_argument(
        "--calib-method",
        choices=METHODS,
        default="percentile",
        help="range method (default percentile: on PEM it kept mIoU where entropy lost points; "
        "`pem compare --calib-methods entropy,max,percentile` measures all three on your data)",
    )
    g.add_argument("--calib-batches", type=int, default=32, help="frames used for calibration (default 32)")
    g.add_argument("--calib-percentile", type=float, default=99.99, help="for --calib-method percentile")
    g.add_argument(
        "--calib-cache",
        type=Path,
        default=None,
        help="calibration cache file (default: <model stem>.calib beside the model)",
    )
    g.add_argument(
        "--int8-exclude",
        action="append",
        default=[],
        metavar="REGEX",
        help="keep nodes whose name matches out of INT8 (repeatable)",
    )


def config_from_args(
    args: argparse.Namespace, high_precision: str = "fp16", default_data: str | None = None
) -> CalibrationConfig:
    """The :class:`CalibrationConfig` of the flags :func:`add_calibration_args` added; without
    ``--calib-data`` the frames are ``default_data`` (None: the flag is required)."""
    data = args.calib_data or default_data
    if data is None:
        raise PemError("--calib-data is required: an image folder, a video, or 'skimage'")
    return CalibrationConfig(
        data=data,
        method=args.calib_method,
        batches=args.calib_batches,
        percentile=args.calib_percentile,
        cache=args.calib_cache,
        exclude=tuple(args.int8_exclude),
        high_precision=high_precision,
    )
