"""Tests of the Python reference. Shared data comes from $BITPARITY_SHARED_DIR (default
<repo>/../shared); tests needing it skip with a message starting "SKIP-ALL:" when it is absent."""

import os
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_dir():
    return os.environ.get('BITPARITY_SHARED_DIR') or os.path.join(REPO, '..', 'shared')


def shared(rel):
    """Absolute path of ``rel`` under the shared folder, or SkipTest when it is missing."""
    path = os.path.join(shared_dir(), rel)
    if not os.path.exists(path):
        raise unittest.SkipTest('SKIP-ALL: shared data %s not found (set BITPARITY_SHARED_DIR)' % path)
    return path
