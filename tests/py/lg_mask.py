"""The LongGen attention masks, written independently of kernels/layout.c from the DESIGN.md definition,
for the HF transformers oracle (a custom attention function that applies them per layer and head)."""
import torch


def allowed(kind, p, kv_heads, h, S):
    """Bool (S, S) mask for KV head h: [q, k] True where query q may attend key k."""
    q = torch.arange(S)[:, None]
    k = torch.arange(S)[None, :]
    causal = k <= q
    if kind == "full":
        return causal
    if kind == "sink_window":
        return causal & ((k < p["sink"]) | (q - k < p["window"]))
    if kind == "block_sparse":
        B, local, stride = p["block"], p["local_blocks"], p["vert_stride"]
        step = max(1, stride // kv_heads)
        qb, kb = q // B, k // B
        keep = ((qb - kb) < local) | (((kb + h * step) % stride) == 0)
        return causal & keep
    raise ValueError(kind)


def make_attention(layout, kv_heads):
    """layout: list per layer of (kind, params). Returns an AttentionInterface-style function."""

    def attn(module, query, key, value, attention_mask, scaling, dropout=0.0, **kw):
        # query (B, H, S, D); key/value (B, KVH, S, D)
        Bsz, H, S, D = query.shape
        groups = H // kv_heads
        kind, p = layout[module.layer_idx]
        out = torch.empty_like(query)
        for h in range(H):
            kvh = h // groups
            m = allowed(kind, p, kv_heads, kvh, S)
            s = (query[:, h] @ key[:, kvh].transpose(-1, -2)) * scaling
            s = s.masked_fill(~m, float("-inf"))
            out[:, h] = torch.softmax(s, dim=-1) @ value[:, kvh]
        return out.transpose(1, 2).contiguous(), None

    return attn
