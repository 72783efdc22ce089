"""Every YAML block of the documents is a configuration the strict loader accepts.

A block that names a field the config does not have (a renamed key) fails here with the
loader's one-line error, so the documents cannot drift from ``zubovnet.config``."""
import re
from pathlib import Path

import pytest
import yaml

from zubovnet.config import config_from_dict

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)


def yaml_blocks():
    for path in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(BLOCK.finditer(path.read_text())):
            data = yaml.safe_load(m.group(1))
            if isinstance(data, dict) and {"model", "train", "baseline", "loss", "data"} & set(data):
                yield pytest.param(data, id=f"{path.name}#{i}")


def test_the_documents_have_config_blocks():
    assert len(list(yaml_blocks())) >= 6


@pytest.mark.parametrize("data", list(yaml_blocks()))
def test_every_config_block_of_the_documents_loads(data):
    data = dict(data)
    data.pop("base", None)        # a block may name the file it extends
    config_from_dict(data)


def test_a_renamed_key_is_refused():
    with pytest.raises(Exception, match="lyanet_kappa"):
        config_from_dict({"baseline": {"lyanet_kappa": 2.0}})
