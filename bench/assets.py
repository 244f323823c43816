"""Assets benchmark: images per second (a 2 MP JPEG -> three WebP renditions) through the
``assets`` pool against a plain Pillow loop doing the same work, same run, same number of
processes.

    .venv/bin/python -m bench.assets [--images 200] [--processes 2]

Ours: ``--images`` uploads recorded as the API records them (``domain.assets.services.
receive_upload``: the JPEG streamed to the local storage, the asset row and its
``ProcessAssetV1`` in one transaction, admitted by the fairness limit of 4 in flight), then
a real ``celery worker -Q assets -c <processes>`` processes them: fetch the original from
the storage, hash it, sniff it, check it, decode it, three renditions (160, 640, 1280 px)
stored, progress written, the outcome and the owner's notice event committed with the
inbox row, the next parked upload released. Images per second are the images over the span
from the first start to the last finish, as the asset rows record them (the worker's
start-up is outside it; a warm-up batch runs first).

Baseline: ``multiprocessing`` with the same number of processes, each running a plain loop
over its share of the same files: open, decode (at the smallest JPEG scale still as large as
the biggest rendition, as ours does), apply the EXIF orientation, three thumbnails saved as
WebP with the same quality. Final line: ``assets: pool_per_s=.. raw_per_s=.. ratio=..``;
target ``ratio >= 0.8``.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps
from sqlalchemy import func, select

from bench.common import (
    DEFAULT_POSTGRES,
    BenchError,
    Child,
    Stack,
    Target,
    add_trial_tenant,
    final_line,
    run_bench,
    table,
    targets_line,
    wait_for,
)
from config.settings import Settings, load_settings
from domain.assets import kinds, policies, services
from domain.assets.models import Asset
from domain.assets.storage import build_storage
from domain.bootstrap import build_provider
from domain.db.provider import DataProvider
from domain.messaging import outbox
from domain.messaging.outbox import Envelope
from workers.publisher import publish, web_publisher

SIZES = (1280, 640, 160)
QUALITY = 80  # domain.assets.images.RENDITION_QUALITY
WIDTH, HEIGHT = 1632, 1224  # 2.0 MP, 4:3


@dataclass(frozen=True)
class Figures:
    """What one run measured."""

    images: int
    processes: int
    pool_seconds: float
    raw_seconds: float
    jpeg_bytes: int


def photo() -> bytes:
    """A 2 MP photo-like JPEG (noise and soft shapes, so it compresses like a photo)."""
    noise = Image.effect_noise((WIDTH, HEIGHT), 40).convert("RGB")
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT)).convert("RGB")
    image = Image.blend(noise, gradient, 0.6).filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def record(provider: DataProvider, settings: Settings, tenant_id: uuid.UUID, data: bytes,
           count: int) -> tuple[list[uuid.UUID], list[Envelope]]:
    """``count`` uploads recorded as the API records them: their ids, and the messages
    admitted (the rest are parked), to publish when the measurement starts."""
    storage = build_storage(settings)
    policy = policies.Policy(10**12, kinds.DEFAULT_BLOCKED, True)
    uploader = services.Uploader(tenant_id, uuid.uuid4(), policy, settings.asset_max_upload_bytes)
    ids: list[uuid.UUID] = []
    admitted: list[Envelope] = []
    for index in range(count):
        with provider.tenant(tenant_id) as session:
            upload = services.Upload(f"photo-{index}.jpg", "image/jpeg", len(data))
            ids.append(services.receive_upload(session, storage, io.BytesIO(data), upload, uploader).id)
            admitted += outbox.take_pending(session)
            session.commit()
    return ids, admitted


def processed(provider: DataProvider, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> int:
    """How many of ``ids`` are ready (a rejected one fails the run)."""
    with provider.tenant(tenant_id) as session:
        rows = session.execute(select(Asset.status, func.count()).where(Asset.id.in_(ids))
                               .group_by(Asset.status)).all()
    counts = dict(rows)  # type: ignore[arg-type]
    if counts.get("rejected"):
        raise BenchError(f"{counts['rejected']} images were rejected")
    return int(counts.get("ready", 0))


def span(provider: DataProvider, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> float:
    """Seconds from the first start to the last finish of ``ids``."""
    with provider.tenant(tenant_id) as session:
        first, last = session.execute(select(func.min(Asset.started_at), func.max(Asset.finished_at))
                                      .where(Asset.id.in_(ids))).one()
    return float((last - first).total_seconds())


def durations(provider: DataProvider, tenant_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Print how long each asset took from its start to its finish (p50, max)."""
    with provider.tenant(tenant_id) as session:
        rows = session.execute(select(Asset.started_at, Asset.finished_at).where(Asset.id.in_(ids))).all()
    spans = sorted((done - start).total_seconds() * 1000 for start, done in rows)
    print(f"  per image, start to finish: p50 {spans[len(spans) // 2]:.0f} ms, max {spans[-1]:.0f} ms",
          file=sys.stderr, flush=True)


def raw_render(path: str) -> int:
    """The plain Pillow work for one file: decode, orientation, three WebP renditions."""
    with Image.open(path) as image:
        image.draft("RGB", (SIZES[0], SIZES[0]))
        upright = ImageOps.exif_transpose(image) or image
        source = upright.convert("RGB")
        written = 0
        for size in SIZES:
            scaled = source.copy()
            scaled.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            out = io.BytesIO()
            scaled.save(out, "WEBP", quality=QUALITY)
            Path(f"{path}.{size}.webp").write_bytes(out.getvalue())
            written += 1
            source = scaled
        return written


def raw_loop(paths: list[str]) -> int:
    """One process's share of the baseline: a plain loop."""
    return sum(raw_render(path) for path in paths)


def _plain_signals() -> None:
    """A baseline process ends quietly when the pool stops it (not the stack's Ctrl-C handler)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def raw_run(folder: Path, data: bytes, count: int, processes: int) -> float:
    """Seconds for ``processes`` plain loops to render ``count`` copies of the JPEG."""
    paths = []
    for _ in range(count):
        path = folder / f"raw-{uuid.uuid4().hex}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    shares = [paths[i::processes] for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes, initializer=_plain_signals) as pool:
        pool.map(raw_loop, [paths[:2] for _ in range(processes)])  # warm-up, as the pool had
        started = time.perf_counter()
        done = sum(pool.map(raw_loop, shares))
        seconds = time.perf_counter() - started
    if done != 3 * count:
        raise BenchError(f"the baseline wrote {done} renditions, not {3 * count}")
    return seconds


@dataclass(frozen=True)
class Pool:
    """The running assets pool and what it is fed."""

    provider: DataProvider
    settings: Settings
    tenant_id: uuid.UUID
    data: bytes
    worker: Child
    args: argparse.Namespace

    def round(self, count: int) -> float:
        """Seconds the pool takes for ``count`` images (recorded first, then released)."""
        ids, admitted = record(self.provider, self.settings, self.tenant_id, self.data, count)
        publisher = web_publisher(self.settings.broker_url, self.settings.result_backend)
        try:
            publish(publisher, admitted)
        finally:
            publisher.close()
        wait_for(lambda: processed(self.provider, self.tenant_id, ids) == len(ids), timeout=self.args.timeout,
                 what=f"{count} images through the pool", watch=[self.worker], interval=0.2)
        if self.args.verbose:
            durations(self.provider, self.tenant_id, ids)
        return span(self.provider, self.tenant_id, ids)


def measure(args: argparse.Namespace, stack: Stack) -> Figures:
    """Rounds of: a batch through the pool, then the plain loop on as many files; summed, so
    a machine whose load drifts weighs on both alike."""
    stack.start_redis()
    databases = stack.create_databases()
    env = stack.env(databases, LOG_LEVEL="WARNING", ASSET_RENDITION_SIZES=",".join(map(str, SIZES)))
    settings = load_settings(env)
    provider = build_provider(settings)
    stack.on_close(provider.dispose)
    with provider.management() as session:
        tenant_id, _ = add_trial_tenant(session, "Bench assets")
        session.commit()
    data = photo()
    print(f"a {WIDTH}x{HEIGHT} JPEG of {len(data):,} bytes; {args.images} images in {args.rounds} rounds",
          file=sys.stderr, flush=True)
    worker = stack.spawn("worker-assets", [sys.executable, "-m", "celery", "-A", "workers.app", "worker",
                                           "-Q", "assets", "-c", str(args.processes), "-n", "bench-assets@%h",
                                           "--without-gossip", "--without-mingle", "-l", "WARNING"], env)
    pool = Pool(provider, settings, tenant_id, data, worker, args)
    pool.round(args.warmup)
    folder = stack.tmp / "raw"
    folder.mkdir()
    per_round = max(args.images // args.rounds, 1)
    pool_seconds = raw_seconds = 0.0
    for index in range(args.rounds):
        ours = pool.round(per_round)
        raw = raw_run(folder, data, per_round, args.processes)
        print(f"  round {index + 1}: pool {per_round / ours:.1f} images/s, raw {per_round / raw:.1f} "
              "images/s", file=sys.stderr, flush=True)
        pool_seconds, raw_seconds = pool_seconds + ours, raw_seconds + raw
    return Figures(per_round * args.rounds, args.processes, pool_seconds, raw_seconds, len(data))


def report(figures: Figures) -> int:
    """Print the table, the targets and the final line."""
    pool_per_s = figures.images / figures.pool_seconds
    raw_per_s = figures.images / figures.raw_seconds
    ratio = pool_per_s / raw_per_s
    print(table(["path", "processes", "images", "seconds", "images/s"], [
        ["assets pool (upload recorded -> ready)", figures.processes, figures.images,
         f"{figures.pool_seconds:.2f}", f"{pool_per_s:.1f}"],
        ["plain Pillow loop", figures.processes, figures.images, f"{figures.raw_seconds:.2f}",
         f"{raw_per_s:.1f}"],
    ]))
    print(f"\n2 MP JPEG ({figures.jpeg_bytes:,} bytes) -> WebP at {', '.join(map(str, SIZES))} px")
    print(targets_line([Target("ratio", ratio, ">=", 0.8)]))
    print(final_line("assets", {"pool_per_s": pool_per_s, "raw_per_s": raw_per_s, "ratio": ratio},
                     {"pool_per_s": 1, "raw_per_s": 1, "ratio": 3}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when it measured (target met or not), 1 on errors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a server to create databases on")
    parser.add_argument("--images", type=int, default=200, help="images measured each way (200)")
    parser.add_argument("--rounds", type=int, default=4, help="alternating pool / baseline rounds (4)")
    parser.add_argument("--warmup", type=int, default=10, help="images through the pool first (10)")
    parser.add_argument("--processes", type=int, default=2, help="worker children and baseline processes (2)")
    parser.add_argument("--timeout", type=float, default=600.0, help="deadline of each wait, seconds (600)")
    parser.add_argument("--verbose", action="store_true", help="also print per-image durations")
    args = parser.parse_args(argv)
    return run_bench(args.postgres, lambda stack: measure(args, stack), report)


if __name__ == "__main__":
    sys.exit(main())
