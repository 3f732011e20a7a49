"""Where datasets live: the local data root, and the official files with their SHA-256 checksums.

This module is pure data plus one path helper; it does no I/O beyond reading an environment
variable. ``download.py`` fetches and verifies the files listed here, ``loaders.py`` reads them.

Checksums are SHA-256 over each file exactly as its authors published it (see the offline data
README). For the SMS Spam Collection the published archive is a zip from UCI; the checksum pinned
here is of the extracted ``SMSSpamCollection`` member, which is what is stored and loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

__all__ = ["ENV_VAR", "FileSpec", "PMLB_NAMES", "SOURCES", "data_root", "folder_name"]

ENV_VAR = "PICKWISE_DATA"


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder that holds one sub-folder per dataset.

    Resolution order: the ``root`` argument; else the environment variable ``PICKWISE_DATA``;
    else ``~/.cache/pickwise``. The folder is not created here (``download`` creates it).

    Parameters
    ----------
    root : str or PathLike, optional
        An explicit data folder; ``~`` is expanded.

    Returns
    -------
    Path
        The resolved data folder (it may not exist yet).
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pickwise"


@dataclass(frozen=True)
class FileSpec:
    """One published file: its local name, checksum, size and where to fetch it.

    ``urls`` are tried in order (the authors' location first, then well-known mirrors); the
    checksum makes a mirror as trustworthy as the original. When ``member`` is set, the URL
    serves a zip archive and ``member`` is the file inside it that is extracted and checked.
    """

    filename: str
    sha256: str
    size: int
    urls: tuple[str, ...]
    member: str | None = None


def _idx_files(
    bases: tuple[str, ...], checks: dict[str, tuple[str, int]]
) -> tuple[FileSpec, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    return tuple(
        FileSpec(n, checks[n][0], checks[n][1], tuple(base + n for base in bases)) for n in names
    )


_MNIST = _idx_files(
    # LeCun's page is the official source; it often refuses scripted downloads, so the mirror
    # that torchvision uses follows. Both serve byte-identical files.
    ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    {
        "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    },
)

_FASHION = _idx_files(
    # Zalando Research's own S3 bucket, then the files committed to their GitHub repository.
    (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    ),
    {
        "train-images-idx3-ubyte.gz": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        "train-labels-idx1-ubyte.gz": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        "t10k-images-idx3-ubyte.gz": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        "t10k-labels-idx1-ubyte.gz": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    },
)

# PMLB keeps its tables in Git LFS; GitHub's /raw/ URL redirects to the LFS media object, whose
# SHA-256 is the LFS object id and therefore equals the checksum below.
_PMLB_URL = "https://github.com/EpistasisLab/pmlb/raw/master/datasets/{name}/{name}.tsv.gz"
_PMLB: dict[str, tuple[str, int]] = {
    "letter": ("f8ffe4f9920dc63fb85b864cc1afffb66e45c6e302d175905fd7db04ba67b8c6", 213271),
    "pendigits": ("73294fc30c2c50bf737c954d04cca3a1be69508535d3d52e2512ec88fefaad3f", 200229),
    "optdigits": ("b70b7ac68a54d1ccd41bd24f11324c3af96b67541791fb9d8684cbdf151533c3", 184828),
    "segmentation": ("980ba4342d2fe489793cc3431678318f8d1467fe6bf6a687eb18bfc2267a049f", 111831),
    "vehicle": ("dad03273414ae7127e30b6e4e66df90319a148b37ead5dd376dd140be5baedc4", 19819),
    "magic": ("c823ea26d676538f9194d41f290798ff2f3fe59255c340418fd9439d8fc9c07f", 656465),
    "spambase": ("735e8d43f7ee78ac54ca17404510e95f4c8b364a721e4d9532a1b3221ed70961", 132367),
    "adult": ("fb8bc76eafa39558b6044907f23416faf99099cefb8afd06a2cf5afbdae1b506", 497131),
    "mushroom": ("d8daa6822f14604f8567a5a8e5dfa93db6c383cf01aac01812c0ebdce3ab158a", 36294),
    "shuttle": ("fb73571feabc1f0c10dc749acb28bf2d0efceeedca2115eafd79ad5b82cdcba0", 473320),
    "kr_vs_kp": ("f1004d98e1ca1fcfd9809627e4a751c7acd821743a75e49c6f2a8853f32fb24f", 11880),
    "connect_4": ("e283074e1123d23361332bd83414c172640d2596fc076d1e20e8f4a64a658137", 309513),
    "splice": ("30f7c126059de9f5962c41bbfbdee2926ea9432e4d620930ce6db79a43885510", 69522),
}

PMLB_NAMES: tuple[str, ...] = tuple(_PMLB)

_SMS = (
    FileSpec(
        "SMSSpamCollection",
        "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        477907,
        ("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",),
        member="SMSSpamCollection",
    ),
)

#: Dataset name → the files that make it up. The dataset's folder under the data root is
#: ``folder_name(name)``. Read-only.
SOURCES: MappingProxyType[str, tuple[FileSpec, ...]] = MappingProxyType(
    {
        "mnist": _MNIST,
        "fashion-mnist": _FASHION,
        **{
            name: (FileSpec(f"{name}.tsv.gz", sha, size, (_PMLB_URL.format(name=name),)),)
            for name, (sha, size) in _PMLB.items()
        },
        "sms-spam": _SMS,
    }
)

_ALIASES = MappingProxyType({"fashion_mnist": "fashion-mnist", "sms_spam": "sms-spam"})


def folder_name(name: str) -> str:
    """The canonical dataset name (and folder name) for ``name``, resolving aliases."""
    return _ALIASES.get(name, name)
