"""`train`, `evaluate` and `predict` commands.

    python -m pspnet_lib train --data DIR --out RUN_DIR [--recipe paper|cpu] [--network pspnet|fcn|article]
                               [--backbone NAME] [--weights imagenet] ...  (one flag per recipe setting)
    python -m pspnet_lib evaluate (--run RUN_DIR | --model FILE|NAME) --data DIR [--split val] [--limit N] [--json]
                                  [--labels standard|border-aware]
    python -m pspnet_lib predict --model FILE|NAME IMAGE... --out DIR [--pairs | --photos]

Bad input (a wrong --data, a missing run, an unreadable image) ends with one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
import typing
from collections.abc import Callable
from pathlib import Path

from pspnet_lib.config import fast_mode
from pspnet_lib.data.palette import EVALUATION_LABELS, LABEL_DECODINGS, is_border_aware
from pspnet_lib.run_files import check_writable_folder, claim_folder

PREDICT_MARKER = ".pspnet-predict"  # written into the --out folder of `predict`

# Under PSPNET_FAST=1 a quick run; otherwise every setting left out comes from the recipe (training.recipes).
FAST_SETTINGS = {"backbone": "small", "image_size": 128, "batch_size": 4}
FAST_EPOCHS = 2  # a fast-mode run without --epochs or --max-minutes
RECIPE_HELP = "default: paper with a GPU or --weights imagenet, else cpu"
NOT_FLAGS = ("name", "about", "spec")  # recipe fields the command line does not set one by one


def one_line_errors(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors a user can cause into one `error: ...` line on stderr and exit status 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from pspnet_lib.training import PretrainedWeightsUnavailable, TrainingDiverged

        try:
            return command(args)
        except (ValueError, OSError, TrainingDiverged, PretrainedWeightsUnavailable) as error:  # DataError: ValueError
            message = str(error).replace("pass skip_bad=True", "pass --skip-bad")  # the command line's name for it
            print(f"error: {message}", file=sys.stderr)
            return 1

    return run


def _switch(parser: argparse.ArgumentParser, name: str, help_text: str) -> None:
    """--NAME / --no-NAME, default None (automatic: on when a GPU is visible)."""
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=help_text)


def recipe_flags(recipe_type=None) -> dict[str, dict]:
    """argparse keywords of one flag per recipe setting (and --network, --backbone for the spec), from the fields:
    their type, `choices` and `help`, each help ending with the named recipes' values."""
    from pspnet_lib.training.recipes import RECIPES, SPEC_SHORTHANDS, Recipe

    recipe_type = recipe_type or Recipe
    hints = typing.get_type_hints(recipe_type)
    flags = {
        name: {"choices": choices, "help": f"the network's {name} (the recipe's: " + ", ".join(
            f"{getattr(recipe.spec, name)} {key}" for key, recipe in RECIPES.items()) + ")"}
        for name, choices in SPEC_SHORTHANDS.items()
    }
    for item in dataclasses.fields(recipe_type):
        if item.name in NOT_FLAGS:
            continue
        kind = hints[item.name]
        options = typing.get_args(kind) or (kind,)
        shown = ", ".join(f"{_shown(getattr(recipe, item.name, item.default))} {key}" for key, recipe in RECIPES.items())
        keywords = {"help": f"{item.metadata.get('help', '')} (the recipe's: {shown})".replace("%", "%%")}
        if item.metadata.get("choices"):
            keywords["choices"] = [_shown(choice) for choice in item.metadata["choices"]]
        elif bool in options:
            keywords["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            keywords.update(type=float, nargs=len(typing.get_args(kind)), metavar=("LOW", "HIGH"))
        else:
            keywords["type"] = next(option for option in options if option is not type(None))
        flags[item.name] = keywords
    return flags


def _shown(value) -> str:
    """A setting as the command line writes it: None is "none", a pair is "LOW HIGH"."""
    if value is None:
        return "none"
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_train_parser(subparsers, recipe_type=None) -> None:
    """The `train` command's arguments: the run folder, data and devices, then one flag per recipe setting."""
    from pspnet_lib.training.recipes import RECIPE_NAMES

    parser = subparsers.add_parser(
        "train", help="train a model (resumes an interrupted run in the same --out folder)",
        description="Train PSPNet, the dilated FCN baseline or the article model; writes RUN_DIR/model.keras, "
        "best.keras, history.csv, config.json and TensorBoard logs. Run the same command again to resume. "
        "Every setting left out comes from the recipe" + (f" (fast mode: {FAST_SETTINGS})" if fast_mode() else "") + ".",
    )
    parser.add_argument("--data", help="dataset root in the Kaggle layout (train/, val/); default: default_dataset()")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--recipe", choices=RECIPE_NAMES, help=f"the defaults of every setting below; {RECIPE_HELP}")
    for name, keywords in recipe_flags(recipe_type).items():
        flag = f"--{name.replace('_', '-')}"
        aliases = ("--model",) if name == "network" else ()  # --model: the flag's name before issue 37
        parser.add_argument(flag, *aliases, dest=name, default=argparse.SUPPRESS, **keywords)
    parser.add_argument("--skip-bad", action="store_true", help="leave unusable pair files out (with a warning)")
    _switch(parser, "mixed-precision", "bfloat16/float16 compute (default: on with a GPU)")
    _switch(parser, "xla", "XLA compilation (default: on with a GPU; a GPU option, ignored on a CPU)")
    _switch(parser, "distribute", "all visible GPUs / TF_CONFIG workers (default: on)")
    parser.add_argument("--no-tensorboard", dest="tensorboard", action="store_false", help="skip TensorBoard logs")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    parser.set_defaults(func=run_train)


def recipe_changes(args: argparse.Namespace) -> dict:
    """The recipe settings given on the command line (plus fast mode's quick ones), as `configure` takes them."""
    flags = recipe_flags()
    changes = {name: value for name, value in vars(args).items() if name in flags}
    if fast_mode():
        changes = {**FAST_SETTINGS, **changes}
        if "epochs" not in changes and "max_minutes" not in changes:
            changes["epochs"] = FAST_EPOCHS
    if "weights" in changes:
        changes["weights"] = None if changes["weights"] == "none" else changes["weights"]
    if "scale_range" in changes:
        changes["scale_range"] = tuple(changes["scale_range"])
    return changes


def with_flag_names(error: ValueError) -> ValueError:
    """`error` with the setting it starts with followed by its flag: "lr must be ..." -> "lr (--lr) must be ..."."""
    message = str(error)
    name = message.split(" ", 1)[0]
    if name == "out":  # the run folder has no other name on the command line
        return ValueError("--out" + message[len(name):])
    if name in recipe_flags():
        return ValueError(message.replace(name, f"{name} (--{name.replace('_', '-')})", 1))
    return error


@one_line_errors
def run_train(args: argparse.Namespace) -> int:
    """Train (or resume) and print where the results are."""
    from pspnet_lib.training import configure, default_recipe_name, train, visible_gpus

    changes = recipe_changes(args)
    # The device plan picks the recipe a command names none of: the paper's with a GPU.
    recipe = args.recipe or default_recipe_name(len(visible_gpus()), changes.get("weights"))
    try:
        config = configure(
            args.out, args.data, recipe, mixed_precision=args.mixed_precision, xla=args.xla,
            distribute=args.distribute, tensorboard=args.tensorboard, skip_bad=args.skip_bad, **changes,
        )
    except ValueError as error:
        raise with_flag_names(error) from None
    result = train(config, verbose=2 if args.quiet else 1)
    last = result.history[-1] if result.history else {}
    shown = [key for key in last if key in ("loss", "val_loss") or key.endswith("miou")]
    summary = ", ".join(f"{key} {last[key]:.4f}" for key in shown)
    budget = " (time budget reached)" if result.stopped_by_time_budget else ""
    written = "" if result.chief else " (written by the chief worker)"
    print(f"Trained {len(result.history)} epochs{budget}: {summary}. Model: {result.run_dir / 'model.keras'}{written}")
    return 0


def add_evaluate_parser(subparsers) -> None:
    """The `evaluate` command's arguments."""
    parser = subparsers.add_parser("evaluate", help="mIoU, pixel accuracy and per-class IoU of a trained model")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", help="run folder written by `train` (uses its model.keras)")
    source.add_argument("--model", help="a .keras model file, or the name of a model the library ships")
    parser.add_argument("--data", help="dataset root (default: the run's data, else default_dataset())")
    parser.add_argument("--split", choices=("train", "val"), default="val")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--skip-bad", action="store_true", help="leave unusable pair files out (with a warning)")
    parser.add_argument(
        "--image-size", type=int, help="image size fed to the model (default: the one the model records, else the run's)"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--flip", action="store_true", help="average with the left-right flipped prediction")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0], help="multi-scale inference, e.g. 0.75 1 1.25")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    parser.add_argument(
        "--labels", default=EVALUATION_LABELS, metavar="|".join(LABEL_DECODINGS),
        help=f"how label colours become classes (default {EVALUATION_LABELS}: nearest label colour, every labelled "
        "pixel counts, as Cityscapes' evaluation; border-aware also leaves JPEG blends at class borders out)",
    )
    parser.set_defaults(func=run_evaluate)


def _run_settings(run_dir: Path) -> tuple[Path, dict]:
    """The model file and saved config of a finished run folder; ValueError when it is not one."""
    if not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} does not exist")
    model_path = run_dir / "model.keras"
    if not model_path.is_file():
        raise ValueError(f"{run_dir} holds no model.keras: training has not finished (run `train` again to resume)")
    config_path = run_dir / "config.json"
    return model_path, json.loads(config_path.read_text()) if config_path.is_file() else {}


@one_line_errors
def run_evaluate(args: argparse.Namespace) -> int:
    """Score a model on a split and print a table or one JSON line."""
    from pspnet_lib import data, inference, models
    from pspnet_lib.training.inputs import check_labels
    from pspnet_lib.training.recipes import side_in_pixels

    is_border_aware(args.labels, "--labels")  # a misspelt decoding: one line naming the option
    if args.image_size is not None:
        side_in_pixels("--image-size", args.image_size)
    model_path, settings = _run_settings(Path(args.run)) if args.run else (model_file(args.model), {})
    recipe = settings.get("recipe") if isinstance(settings.get("recipe"), dict) else {}  # {}: an older config.json
    root = args.data or settings.get("data")
    if root is None:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout to the scores (one JSON line with --json)
            root = data.default_dataset()
    check_labels(data.resolve_dataset_dirs(root).root, args.split)  # unknown label colours: no score would mean anything
    model = inference.load_model(model_path)
    image_size = args.image_size or models.image_size_of(model) or recipe.get("image_size")
    if image_size is None:
        raise ValueError(
            f"{model_path} does not record the image size it was trained at (saved by an older pspnet_lib): "
            "give --image-size"
        )
    scores = inference.evaluate_split(
        model, root, args.split, image_size=image_size, batch_size=args.batch_size, limit=args.limit,
        skip_bad=args.skip_bad, labels=args.labels, flip=args.flip, scales=tuple(args.scales),
    )
    summary = scores.as_dict()
    print(json.dumps(summary) if args.json else format_scores(summary))
    return 0


def format_scores(summary: dict) -> str:
    """A readable table of per-class IoU followed by mIoU, pixel accuracy and the label decoding scored against."""

    def cell(value: float | None) -> str:
        return "   n/a" if value is None else f"{value:6.3f}"

    width = max(len(name) for name in [*summary["per_class_iou"], "pixel accuracy"])
    lines = [f"{'class':<{width}}    IoU"]
    lines += [f"{name:<{width}} {cell(iou)}" for name, iou in summary["per_class_iou"].items()]
    lines += [f"{'mIoU':<{width}} {cell(summary['miou'])}", f"{'pixel accuracy':<{width}} {cell(summary['pixel_accuracy'])}"]
    if "labels" in summary:
        lines.append(f"labels decoded: {summary['labels']}")
    return "\n".join(lines)


def add_predict_parser(subparsers) -> None:
    """The `predict` command's arguments."""
    parser = subparsers.add_parser("predict", help="write colour overlays of a model's predictions")
    parser.add_argument(
        "--model", required=True, help="a .keras model file, a finished run folder, or the name of a model the library ships"
    )
    parser.add_argument(
        "images", nargs="+", metavar="IMAGE",
        help="photos, or Kaggle pairs (photo left, colour labels right: only the photo is used)",
    )
    parser.add_argument(
        "--out", required=True, help="folder for the <name>_overlay.png files: new, empty or written by `predict` before"
    )
    parser.add_argument("--flip", action="store_true", help="average with the left-right flipped prediction")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--pairs", dest="layout", action="store_const", const="pair",
        help="every IMAGE is a Kaggle pair (default: a 2:1 image is a pair when its right half looks like labels)",
    )
    layout.add_argument(
        "--photos", dest="layout", action="store_const", const="photo",
        help="every IMAGE is a photo, used whole, even when twice as wide as high",
    )
    parser.set_defaults(layout="auto")
    parser.set_defaults(func=run_predict)


@one_line_errors
def run_predict(args: argparse.Namespace) -> int:
    """Predict each image and save its overlay as a PNG (one path per line on stdout)."""
    from PIL import Image

    from pspnet_lib import inference
    from pspnet_lib.data.palette import overlay_colors
    from pspnet_lib.data.photos import read_photo

    check_distinct_outputs(args.images)
    photos = [(Path(path), *read_photo(Path(path), args.layout)) for path in args.images]  # fail early
    out = check_writable_folder(args.out, "--out", (PREDICT_MARKER,), "the overlays")
    model = inference.load_model(model_file(args.model))
    out = claim_folder(out, "--out", (PREDICT_MARKER,), "the overlays")
    for path, photo, is_pair in photos:
        if args.layout == "auto" and is_pair:
            print(f"{path}: its right half looks like colour labels, so only its left half is used "
                  "(--photos uses whole images)", file=sys.stderr)
        bounded = inference.fit_within(photo, inference.MAX_PREDICT_SIDE)
        if bounded.shape != photo.shape:
            print(f"{path}: {photo.shape[1]}x{photo.shape[0]} pixels is more than {inference.MAX_PREDICT_SIDE} a side, "
                  f"so it is predicted and written at {bounded.shape[1]}x{bounded.shape[0]}", file=sys.stderr)
            photo = bounded
        ids = inference.predict_ids(model, photo[None], flip=args.flip)[0]
        target = out / f"{path.stem}_overlay.png"
        Image.fromarray(overlay_colors(photo, ids)).save(target)
        print(target)
    return 0


def model_file(model: str) -> Path:
    """The .keras file `--model` names: a file, a shipped model's name (its SHA-256 checked), or a finished run
    folder for its model.keras (ValueError when unfinished or damaged)."""
    from pspnet_lib import reference

    path = reference.resolve_model(model)
    if not path.is_dir():
        return path
    if (path / "model.keras").is_file():
        return path / "model.keras"
    raise ValueError(
        f"--model {model} is a folder without model.keras: give a .keras file, or a run folder once training has finished"
    )


def check_distinct_outputs(images: list[str]) -> None:
    """ValueError when two IMAGEs (say train/1.jpg and val/1.jpg) would be written to the same overlay file."""
    seen: dict[str, str] = {}
    for image in images:
        name = f"{Path(image).stem}_overlay.png"
        if name in seen and Path(seen[name]) != Path(image):
            raise ValueError(
                f"{seen[name]} and {image} would both be written to {name}: predict them into separate --out folders"
            )
        seen[name] = image


def register(subparsers) -> None:
    """Add the `train`, `evaluate` and `predict` commands."""
    add_train_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_predict_parser(subparsers)
