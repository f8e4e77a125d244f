"""Does the search beat hand-designed networks? A finished job's front beside reference networks trained alike.

Reads a finished job (default: the newest in the database, e.g. the one `make run` made), then trains
reference networks scaled to the job's resolution and classes with exactly the job's recipe (the same
scorer, dataset, epochs, batch size, seed and int8 export): MobileNetV2 at width 0.35 and
EfficientNet-EdgeTPU-S narrowed to width 0.25 by default. Prints one JSON line per reference and per
front member, then for each reference the best front member the sampler proposed at or under the
reference's predicted latency, and whether it is more accurate (`beats`).

    .venv/bin/python bench/reference_comparison.py [--db sqlite:///nas.db] [--job N]
        [--reference mobilenet_v2:0.35 --reference efficientnet_edgetpu_s:0.25]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import sqlalchemy as sa

from nas_service.controller.latency import predict_latency
from nas_service.controller.objective import num_classes_of
from nas_service.controller.scoring import make_scorer
from nas_service.db import Job, make_engine, session_factory
from nas_service.services import jobs
from search_spaces import analyze, encode, reference

DEFAULT_REFERENCES = ("mobilenet_v2:0.35", "efficientnet_edgetpu_s:0.25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="sqlite:///nas.db")
    parser.add_argument("--job", type=int, help="Job id (default: the newest job).")
    parser.add_argument("--reference", action="append", help="NAME:WIDTH, repeatable.")
    args = parser.parse_args()
    sessions = session_factory(make_engine(args.db))
    with sessions() as session:
        job_id = args.job or session.scalar(sa.select(sa.func.max(Job.id)))
        if job_id is None:
            raise SystemExit(f"no job in {args.db}: run `make run` first")
        view = jobs.get_job(session, job_id)
        front = jobs.get_front(session, job_id)
    spec = view.spec
    if spec.resolution is None:
        raise SystemExit(f"job {job_id} searched the resolution: give a job with a fixed one")
    classes = num_classes_of(spec.dataset, spec.resolution)
    scorer = make_scorer(spec.training.scorer)
    print(json.dumps({"job": job_id, "status": view.status, "dataset": spec.dataset, "resolution": spec.resolution,
                      "device": spec.device, "epochs": spec.training.epochs, "batch_size": spec.training.batch_size,
                      "seed": spec.seed, "scorer": spec.training.scorer}), flush=True)
    for p in front:
        print(json.dumps({"front_member": p.candidate_id, "origin": p.origin, "accuracy": p.accuracy,
                          "int8_accuracy": p.int8_accuracy, "latency_ms": round(p.latency_ms, 4), "params": p.params,
                          "arch": p.arch}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.reference or DEFAULT_REFERENCES:
            name, _, width = text.partition(":")
            arch = reference(name, float(width or 1.0), classes, spec.resolution)
            latency = predict_latency(arch, spec.device).total_ms
            score = scorer.score(arch, dataset=spec.dataset, training=spec.training, seed=spec.seed,
                                 keep_going=lambda epoch, acc: True, artifacts_dir=Path(tmp))
            sampled = [p for p in front if p.origin == "sampler" and p.latency_ms <= latency]
            best = max(sampled, key=lambda p: p.accuracy, default=None)
            print(json.dumps({
                "reference": text, "accuracy": score.accuracy, "int8_accuracy": score.int8_accuracy,
                "latency_ms": round(latency, 4), "params": analyze(arch).params, "seconds": round(score.seconds, 1),
                "best_sampled_at_or_under": None if best is None else {
                    "candidate": best.candidate_id, "accuracy": best.accuracy, "int8_accuracy": best.int8_accuracy,
                    "latency_ms": round(best.latency_ms, 4)},
                "beats": best is not None and best.accuracy > score.accuracy,
                "margin_points": None if best is None else round(100 * (best.accuracy - score.accuracy), 2),
                "arch": encode(arch)}), flush=True)


if __name__ == "__main__":
    main()
