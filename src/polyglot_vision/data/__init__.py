"""Data: sources loaded with `datasets`, unified into one concept space, cached as pixels, sampled for training."""

from .pixels import (
    DecodedBatches,
    PixelBatches,
    PixelNormalizer,
    batches_of,
    cache_pixels,
    cached_already,
    check_pixel_cache_fits,
    collate,
    decode_on_the_fly,
    pixel_cache_bytes,
    processor_input_size,
    stream_pixels,
)
from .sampler import BalancedSampler, build_sampler
from .sources import SPLITS, DataArguments, SourceConfig, load_source, read_paths
from .streaming import streaming_splits
from .unify import (
    GROUP_COLUMNS,
    Unified,
    build_dataset,
    few_shot,
    format_counts,
    load_and_align,
    save_dataset,
    split_counts,
    unify,
)
from .votes import vote_by_images

__all__ = [
    "GROUP_COLUMNS",
    "SPLITS",
    "BalancedSampler",
    "DataArguments",
    "DecodedBatches",
    "PixelBatches",
    "PixelNormalizer",
    "SourceConfig",
    "Unified",
    "batches_of",
    "build_dataset",
    "build_sampler",
    "cache_pixels",
    "cached_already",
    "check_pixel_cache_fits",
    "collate",
    "decode_on_the_fly",
    "few_shot",
    "format_counts",
    "load_and_align",
    "load_source",
    "pixel_cache_bytes",
    "processor_input_size",
    "read_paths",
    "save_dataset",
    "split_counts",
    "stream_pixels",
    "streaming_splits",
    "unify",
    "vote_by_images",
]
