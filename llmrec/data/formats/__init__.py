"""Input formats, one module each (detect + load), behind the DATA_FORMATS registry.

Shipped: lcrec, movielens, taobao, minionerec, amazon2018. A user format is a `DataFormat` reached
by a dotted path (`format="mypkg.formats:MY_FORMAT"`) or added with `register_format`.
"""

from llmrec.data.formats import amazon2018, lcrec, minionerec, movielens, taobao  # noqa: F401  (register)
from llmrec.data.formats.base import DATA_FORMATS, DataFormat, Loaded, register_format

__all__ = ["DATA_FORMATS", "DataFormat", "Loaded", "register_format"]
