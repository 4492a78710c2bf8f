"""Record a PyTorch model's activations as canonical bitparity taps (docs/taps.md), with forward hooks.

    import bitparity
    from bitparity.torch_hooks import TapRecorder, TRANSFORMERS_BITNET

    with bitparity.TraceWriter('mine.npz', producer={'name': 'my-torch-port'}, model=...) as w, \\
            TapRecorder(model, w, TRANSFORMERS_BITNET) as rec:
        with rec.evaluation(prompt_ids, p0=0):
            out = model(torch.tensor([prompt_ids]))
        with rec.evaluation([next_id], p0=len(prompt_ids)):
            out = model(torch.tensor([[next_id]]), past_key_values=out.past_key_values)

A name map says which module's output (or input) is which tap: keys are module names as
``named_modules()`` spells them, with ``{N}`` standing for a layer number; values are a tap name
(the module's output) or a list of ``(tap, 'output' | 'input')`` pairs. ``TRANSFORMERS_BITNET`` is
the map for transformers' ``BitNetForCausalLM`` (the transformers column of docs/taps.md).

Two things no module hook sees are handled here too:
- RoPE. transformers applies it with a plain function (``apply_rotary_pos_emb`` in the model's
  module). ``rec.wrap_rotary(namespace)`` swaps that function, for the recorder's lifetime, for one
  that records its two results as ``blk.{N}.attn_q_rope`` / ``attn_k_rope`` of the layer running.
- Head order. transformers' BitNet rotates pairs (i, i+D/2) like bitnet.cpp and llama.cpp run
  BitNet, so its q_proj/k_proj rows are already in GGUF order (``qk_layout='gguf'``, the default).
  LLaMA checkpoints are different: converters permute their Q/K rows for GGUF's (2i, 2i+1) pairing;
  ``qk_layout='hf-llama'`` un-permutes them (row 2i <- i, row 2i+1 <- i+D/2 within each head) before
  the Q/K taps are written, so a transformers LLaMA compares with a GGUF trace.

Taps are collected per evaluation and written, in docs/taps.md's order, when the evaluation ends.
Only batch size 1 is recorded (a trace is one sequence). torch is imported by this module only.
"""

import contextlib
import re

import numpy as np
import torch

from .trace import BLOCK_TAPS, GLOBAL_TAPS, PROJECTIONS, TraceError

# transformers' BitNetForCausalLM (models/bitnet/modeling_bitnet.py): module -> tap(s).
TRANSFORMERS_BITNET = {
    'model.embed_tokens': 'token_embd',
    'model.layers.{N}.input_layernorm': 'blk.{N}.attn_norm',
    'model.layers.{N}.self_attn.q_proj': 'blk.{N}.attn_q',
    'model.layers.{N}.self_attn.k_proj': 'blk.{N}.attn_k',
    'model.layers.{N}.self_attn.v_proj': 'blk.{N}.attn_v',
    'model.layers.{N}.self_attn.attn_sub_norm': [('blk.{N}.attn_ctx', 'input'), ('blk.{N}.attn_sub_norm', 'output')],
    'model.layers.{N}.self_attn.o_proj': 'blk.{N}.attn_out',
    'model.layers.{N}.post_attention_layernorm': [('blk.{N}.ffn_inp', 'input'), ('blk.{N}.ffn_norm', 'output')],
    'model.layers.{N}.mlp.gate_proj': 'blk.{N}.ffn_gate',
    'model.layers.{N}.mlp.up_proj': 'blk.{N}.ffn_up',
    'model.layers.{N}.mlp.ffn_sub_norm': [('blk.{N}.ffn_act', 'input'), ('blk.{N}.ffn_sub_norm', 'output')],
    'model.layers.{N}.mlp.down_proj': 'blk.{N}.ffn_out',
    'model.layers.{N}': 'blk.{N}.out',
    'model.norm': 'output_norm',
    'lm_head': 'logits',
}

_ORDER = {k: i for i, k in enumerate(
    [t for t in BLOCK_TAPS[:BLOCK_TAPS.index('attn_q')]]
    + ['attn_q.in_q8', 'attn_q.in_scale', 'attn_q', 'attn_k.in_q8', 'attn_k.in_scale', 'attn_k',
       'attn_v.in_q8', 'attn_v.in_scale', 'attn_v']
    + [t for t in BLOCK_TAPS[BLOCK_TAPS.index('attn_q_rope'):BLOCK_TAPS.index('attn_out')]]
    + ['attn_output.in_q8', 'attn_output.in_scale', 'attn_out', 'ffn_inp', 'ffn_norm']
    + ['ffn_gate.in_q8', 'ffn_gate.in_scale', 'ffn_gate', 'ffn_up.in_q8', 'ffn_up.in_scale', 'ffn_up', 'ffn_act',
       'ffn_sub_norm', 'ffn_down.in_q8', 'ffn_down.in_scale', 'ffn_out', 'out'])}
assert len(_ORDER) == len(BLOCK_TAPS) + 2 * len(PROJECTIONS)
_QK = ('attn_q', 'attn_k', 'attn_q_rope', 'attn_k_rope')


def tap_sort_key(tap):
    """Position of a canonical tap in docs/taps.md's firing order (token_embd first, logits last)."""
    m = re.match(r'^blk\.(\d+)\.(.+)$', tap)
    if m:
        return (1, int(m.group(1)), _ORDER.get(m.group(2), len(_ORDER)))
    return (0 if tap == GLOBAL_TAPS[0] else 2, 0, GLOBAL_TAPS.index(tap) if tap in GLOBAL_TAPS else 99)


def unpermute_qk_rows(x, head_dim):
    """[T, heads*D] in the (i, i+D/2) row order of a transformers LLaMA checkpoint -> GGUF's order:
    row 2i <- i, row 2i+1 <- i+D/2 within each head."""
    x = np.asarray(x)
    if x.shape[-1] % head_dim or head_dim % 2:
        raise TraceError('cannot un-permute a width of %d with head_dim %d' % (x.shape[-1], head_dim))
    h = x.reshape(x.shape[:-1] + (x.shape[-1] // head_dim, head_dim))
    out = np.empty_like(h)
    out[..., 0::2], out[..., 1::2] = h[..., :head_dim // 2], h[..., head_dim // 2:]
    return out.reshape(x.shape)


def _compile(name_map):
    """[(regex, [(tap template, where)])] from a name map."""
    entries = []
    for pattern, taps in name_map.items():
        if isinstance(taps, str):
            taps = [(taps, 'output')]
        taps = [(t, w) for t, w in taps]
        for t, w in taps:
            if w not in ('output', 'input'):
                raise TraceError('name map: %s -> %s: where must be "output" or "input", not %r' % (pattern, t, w))
            if ('{N}' in t) != ('{N}' in pattern):
                raise TraceError('name map: %s -> %s: {N} must appear in both or neither' % (pattern, t))
        rx = re.compile('^' + re.escape(pattern).replace(re.escape('{N}'), r'(?P<N>\d+)') + '$')
        entries.append((rx, taps))
    return entries


class TapRecorder:
    """Forward hooks on ``model`` that record the taps ``name_map`` names into ``writer`` (a
    ``bitparity.TraceWriter``). Use as a context manager (hooks removed at exit) and wrap each forward
    call in ``evaluation(tokens, p0)``. ``qk_layout`` is ``'gguf'`` (rows already in GGUF order: any
    BitNet) or ``'hf-llama'`` (un-permute; needs ``head_dim``). ``record(tap, tensor)`` adds a value
    no hook sees. Raises ``TraceError`` when the map matches no module of the model, when a tap
    fires twice in one evaluation, or when the batch size is not 1."""

    def __init__(self, model, writer, name_map=None, *, qk_layout='gguf', head_dim=None):
        if qk_layout not in ('gguf', 'hf-llama'):
            raise TraceError("qk_layout must be 'gguf' or 'hf-llama', not %r" % (qk_layout,))
        if qk_layout == 'hf-llama' and not head_dim:
            raise TraceError("qk_layout='hf-llama' needs head_dim")
        self.writer, self.qk_layout, self.head_dim = writer, qk_layout, head_dim
        self._handles, self._restore, self._pending, self._active, self._layer = [], [], None, False, None
        entries = _compile(TRANSFORMERS_BITNET if name_map is None else name_map)
        self.hooked = {}
        for name, module in model.named_modules():
            for rx, taps in entries:
                m = rx.match(name)
                if not m:
                    continue
                n = m.groupdict().get('N')
                resolved = [(t.replace('{N}', n) if n is not None else t, w) for t, w in taps]
                self.hooked[name] = [t for t, _ in resolved]
                self._handles.append(module.register_forward_hook(self._hook(resolved)))
                if n is not None:  # which layer runs: wrap_rotary's results belong to it
                    self._handles.append(module.register_forward_pre_hook(self._enter_layer(int(n))))
                break
        if not self.hooked:
            self.close()
            raise TraceError('the name map matches no module of %s (first module names: %s)'
                             % (type(model).__name__, ', '.join(n for n, _ in list(model.named_modules())[1:6])))

    # --- lifetime --------------------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Removes the hooks and restores wrapped functions; safe to call more than once."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for namespace, attr, original in reversed(self._restore):
            setattr(namespace, attr, original)
        self._restore = []

    @contextlib.contextmanager
    def evaluation(self, tokens, p0):
        """Begins evaluation e{k} of ``tokens`` at position ``p0``; at the end of the block writes every
        tap recorded during it, in docs/taps.md order. Nothing is written if the block raises."""
        if self._active:
            raise TraceError('evaluation() blocks do not nest')
        tokens = [int(t) for t in tokens]
        self._pending, self._active, self._tokens = {}, True, tokens
        try:
            yield self
            self.writer.begin_evaluation(tokens, p0)
            for tap in sorted(self._pending, key=tap_sort_key):
                self.writer.write_tap(tap, self._pending[tap])
        finally:
            self._pending, self._active, self._layer = None, False, None

    # --- recording -------------------------------------------------------------------------------
    def record(self, tap, value):
        """Records ``value`` ([1, T, ...]: batch size 1, any float dtype) as ``tap`` of the current
        evaluation; ignored outside ``evaluation()``."""
        if not self._active:
            return
        if tap in self._pending:
            raise TraceError('tap %s recorded twice in one evaluation (a module called twice? map it once)' % tap)
        a = value.detach().to(torch.float32).cpu().numpy() if torch.is_tensor(value) else np.asarray(value, np.float32)
        if a.ndim < 2 or a.shape[0] != 1:
            raise TraceError('tap %s: shape %s is not [1, T, ...]: only batch size 1 is recorded'
                             % (tap, tuple(a.shape)))
        a = a[0]
        if self.qk_layout == 'hf-llama' and tap.rsplit('.', 1)[-1] in _QK:
            a = unpermute_qk_rows(a, self.head_dim)
        self._pending[tap] = np.ascontiguousarray(a, dtype=np.float32)

    def _hook(self, taps):
        def hook(module, inputs, output):
            for tap, where in taps:
                v = inputs[0] if where == 'input' else (output[0] if isinstance(output, (tuple, list)) else output)
                self.record(tap, v)
        return hook

    def _enter_layer(self, n):
        def pre_hook(module, inputs):
            self._layer = n
        return pre_hook

    def wrap_rotary(self, namespace, attr='apply_rotary_pos_emb'):
        """Replaces ``namespace.attr`` (a function (q, k, cos, sin, ...) -> (q_rot, k_rot) with q/k shaped
        [1, heads, T, D], like transformers') by one that also records its results as the running
        layer's ``attn_q_rope`` / ``attn_k_rope``; restored by ``close()``."""
        original = getattr(namespace, attr)

        def rotary(q, k, *args, **kwargs):
            q_rot, k_rot = original(q, k, *args, **kwargs)
            if self._active:
                if self._layer is None:
                    raise TraceError('%s ran before any mapped module of a layer: cannot tell which layer '
                                     'its RoPE belongs to' % attr)
                n = self._layer
                for tap, v in (('blk.%d.attn_q_rope' % n, q_rot), ('blk.%d.attn_k_rope' % n, k_rot)):
                    b, h, t, d = v.shape
                    self.record(tap, v.transpose(1, 2).reshape(b, t, h * d))
            return q_rot, k_rot

        setattr(namespace, attr, rotary)
        self._restore.append((namespace, attr, original))
        return self
