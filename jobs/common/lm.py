"""The recurrent language model, as stages that can sit on different devices.

``LMStage`` is any contiguous slice of embedding -> recurrent layers -> decoder(+loss).
The data-parallel job uses one stage holding everything; the model-parallel job places
several stages on different contexts. Options (each a flag in the jobs):
fused cell (one RNN operator, hybridized: one cached graph per bucket shape) or unrolled
cells (imperative; needed for variational dropout), LSTM or GRU, dropout on the
non-recurrent connections, variational (same mask at every step) dropout, a learned
initial state, forget-gate bias 1 (GRU: reset-gate bias -1).
"""
from __future__ import annotations

from dataclasses import dataclass

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import rnn


@dataclass(frozen=True)
class LMConfig:
    vocab_size: int
    embed: int = 200
    hidden: int = 200
    layers: int = 2
    cell: str = "lstm"           # lstm | gru
    fused: bool = True
    dropout: float = 0.2
    variational: bool = False    # same dropout mask at every time step (unrolled cells)
    learned_init: bool = False   # learn the initial hidden (and cell) state
    gate_bias: bool = True       # forget-gate bias 1 / GRU reset-gate bias -1

    @property
    def unrolled(self) -> bool:
        return not self.fused or self.variational

    @property
    def states_per_layer(self) -> int:
        return 2 if self.cell == "lstm" else 1


class LMStage(gluon.HybridBlock):
    """Layers ``[first_layer, first_layer + num_layers)`` plus, optionally, the embedding
    (first stage) and the decoder with the masked loss (last stage).

    Input: ids ``(T, B)`` if it has the embedding, else activations ``(T, B, H)``.
    Output: masked negative log-likelihood ``(T, B)`` if it has the decoder (then also
    pass ``target`` and ``mask``), else activations ``(T, B, H)``.
    """

    def __init__(self, cfg: LMConfig, first_layer: int, num_layers: int,
                 embedding: bool, decoder: bool, **kwargs):
        super().__init__(**kwargs)
        self.cfg, self.num_layers = cfg, num_layers
        self.has_embedding, self.has_decoder = embedding, decoder
        input_size = cfg.embed if first_layer == 0 else cfg.hidden
        with self.name_scope():
            if embedding:
                self.embedding = gluon.nn.Embedding(cfg.vocab_size, cfg.embed)
            self.drop = gluon.nn.Dropout(cfg.dropout)
            if num_layers:
                self.encoder = (_cell_stack(cfg, num_layers, input_size) if cfg.unrolled
                                else _fused_layer(cfg, num_layers, input_size))
                if cfg.learned_init:
                    shape = (num_layers * cfg.states_per_layer, 1, cfg.hidden)
                    self.init_state = self.params.get("init_state", shape=shape, init=mx.init.Zero())
            if decoder:
                self.decoder = gluon.nn.Dense(cfg.vocab_size, flatten=False, in_units=cfg.hidden)

    def hybrid_forward(self, F, x, *loss_inputs, init_state=None):
        if self.has_embedding:
            x = self.drop(self.embedding(x))
        if self.num_layers:
            x = self._encode(F, x, init_state)
        if not self.has_decoder:
            return x
        target, mask = loss_inputs
        logits = self.decoder(self.drop(x))
        # log(pick(softmax)) rather than pick(log_softmax): MXNet 1.9's log_softmax backward
        # is a slow per-element loop (2.4x softmax's on CPU, profiled); the log then runs on
        # T*B values instead of T*B*V. The 1e-12 caps one token's loss at ~27.6 nats.
        nll = -F.log(F.pick(F.softmax(logits, axis=-1), target, axis=-1) + 1e-12)
        return nll * mask

    def _encode(self, F, x, init_state):
        cfg, layers = self.cfg, self.num_layers
        begin = None
        if init_state is not None:
            # (layers*states, 1, H) + (1, B, 1) zeros -> (layers*states, B, H), batch-size free.
            batch_zeros = F.sum(F.slice_axis(x, axis=0, begin=0, end=1), axis=2, keepdims=True) * 0
            full = F.broadcast_add(init_state, batch_zeros)
            per_state = F.split(full, num_outputs=layers * cfg.states_per_layer, axis=0,
                                squeeze_axis=cfg.unrolled)
            per_state = [per_state] if layers * cfg.states_per_layer == 1 else list(per_state)
            begin = per_state
        if cfg.unrolled:
            steps = x.shape[0]  # imperative only: unrolled cells need the length
            self.encoder.reset()
            if begin is None:
                begin = self.encoder.begin_state(batch_size=x.shape[1], func=F.zeros, ctx=x.context)
            out, _ = self.encoder.unroll(steps, x, begin_state=begin, layout="TNC", merge_outputs=True)
            return out
        if begin is None:
            return self.encoder(x)
        if cfg.cell == "lstm":  # fused LSTM wants [h (layers,B,H), c (layers,B,H)]
            begin = [F.concat(*begin[0::2], dim=0), F.concat(*begin[1::2], dim=0)]
        else:
            begin = [F.concat(*begin, dim=0)] if layers > 1 else begin
        out, _ = self.encoder(x, begin)
        return out


def _fused_layer(cfg: LMConfig, layers: int, input_size: int) -> gluon.HybridBlock:
    kind = rnn.LSTM if cfg.cell == "lstm" else rnn.GRU
    return kind(cfg.hidden, num_layers=layers, layout="TNC", dropout=cfg.dropout, input_size=input_size)


def _cell_stack(cfg: LMConfig, layers: int, input_size: int) -> rnn.HybridSequentialRNNCell:
    stack = rnn.HybridSequentialRNNCell()
    kind = rnn.LSTMCell if cfg.cell == "lstm" else rnn.GRUCell
    with stack.name_scope():
        for layer in range(layers):
            cell = kind(cfg.hidden, input_size=input_size if layer == 0 else cfg.hidden)
            if cfg.variational and cfg.dropout:
                cell = mx.gluon.contrib.rnn.VariationalDropoutCell(
                    cell, drop_inputs=cfg.dropout if layer else 0.0, drop_states=cfg.dropout)
            elif cfg.dropout and layer:
                stack.add(rnn.DropoutCell(cfg.dropout))
            stack.add(cell)
    return stack


def apply_gate_biases(block: gluon.Block, cfg: LMConfig) -> None:
    """Forget-gate bias 1 for LSTM (gates i,f,c,o), reset-gate bias -1 for GRU (gates r,z,n).

    Only the input-to-hidden bias is set, so the effective bias is exactly 1 / -1."""
    if not cfg.gate_bias:
        return
    h = cfg.hidden
    gate = slice(h, 2 * h) if cfg.cell == "lstm" else slice(0, h)
    value = 1.0 if cfg.cell == "lstm" else -1.0
    for name, param in block.collect_params().items():
        if name.endswith("i2h_bias"):
            for arr in param.list_data():
                arr[gate] = value


def build_full_model(cfg: LMConfig, ctx: list, init_seed_ctx=None) -> LMStage:
    """The whole model as one stage on ``ctx`` (data parallel), initialised and hybridized."""
    net = LMStage(cfg, 0, cfg.layers, embedding=True, decoder=True, prefix="lm_")
    net.initialize(mx.init.Xavier(), ctx=ctx)
    apply_gate_biases(net, cfg)
    if not cfg.unrolled:
        net.hybridize(static_alloc=True)
    return net
