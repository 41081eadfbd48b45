"""Shard and page sizes for MindRecord files of very unequal records (a few KB of instances, an image of
up to megabytes).

MindRecord never splits a record across pages and pads every page but the file's last to the page size,
so the default 32 MB pages would make a small dataset several times its size: pages are sized to the data.
All shards of a dataset share one page and header size (MindDataset reads shards together only when these
agree), so the shards are cut to about equal bytes.
"""
import numpy as np

from .mindrecord_schema import BLOB_FIELDS, encode_record

MAX_PAGE_SIZE = 256 << 20  # MindRecord's limits
MIN_PAGE_SIZE = 32 << 10
PAGE_ALIGN = 4096
BLOB_FIELD_OVERHEAD = 32   # bytes per blob field of a record, above MindRecord's length prefix (measured: 8)
RECORD_OVERHEAD = 256
RAW_ROW_BYTES = 512        # a generous estimate of a record's scalar fields, for the header size
HEADER_BYTES_PER_PAGE = 512  # the header describes each page in about 180 bytes (measured)


def record_blob_bytes(entry, file_bytes):
    """An upper bound of the bytes MindRecord stores in blob pages for `entry`'s record."""
    blobs = [v for k, v in encode_record(entry, b"").items() if k in BLOB_FIELDS]
    data = sum(v.nbytes if isinstance(v, np.ndarray) else len(v) for v in blobs)
    return file_bytes + data + len(BLOB_FIELDS) * BLOB_FIELD_OVERHEAD + RECORD_OVERHEAD


def _shard_page_layout(blob_bytes):
    largest, total = max(blob_bytes), sum(blob_bytes)
    if largest > MAX_PAGE_SIZE - PAGE_ALIGN:
        raise ValueError(f"a record of {largest} bytes exceeds MindRecord's largest page ({MAX_PAGE_SIZE} bytes)")
    pages = -(-total // (MAX_PAGE_SIZE - PAGE_ALIGN - largest))
    # greedy filling leaves less than `largest` free in a page, so pages of total/pages + largest suffice
    page = total if pages == 1 else -(-total // pages) + largest
    page = max(MIN_PAGE_SIZE, -(-page // PAGE_ALIGN) * PAGE_ALIGN)
    raw_pages = -(-len(blob_bytes) * RAW_ROW_BYTES // page)
    header = max(1 << 16, 1 << (HEADER_BYTES_PER_PAGE * (pages + raw_pages + 4)).bit_length())
    return page, header


def page_layout(shard_blob_bytes):
    """Per shard, the blob bytes of its records -> (page size, header size) for all shards: few, evenly
    filled pages per shard."""
    pages, headers = zip(*(_shard_page_layout(blob_bytes) for blob_bytes in shard_blob_bytes))
    return max(pages), max(headers)


def balanced_shards(blob_bytes, shards):
    """Record sizes -> `shards` non-empty contiguous slices of about equal bytes (all shards share one page
    size, so a smaller shard would leave its last page emptier)."""
    cumulative = np.cumsum(blob_bytes)
    bounds = [0]
    for i in range(1, shards):
        cut = int(np.searchsorted(cumulative, cumulative[-1] * i / shards)) + 1
        bounds.append(min(max(cut, bounds[-1] + 1), len(blob_bytes) - (shards - i)))
    bounds.append(len(blob_bytes))
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]
