"""Cells of ``token_interactions.ipynb`` (registered in ``make_notebooks.py``)."""

from typing import List, Tuple

Cell = Tuple[str, str]

TOKEN_INTERACTIONS: List[Cell] = [
    ("md", r'''# Token-pair interactions of transformers

Captum's `LayerIntegratedGradients` says how much each token matters. Which
tokens matter *together* is a second-order question: "not" matters because of
"good", and "good" matters differently because of "not". This tutorial uses

* `LayerIntegratedHessians`, `LayerCrossDerivatives` and `LayerSmoothHess`, the
  layer variants of the interaction methods: the model runs on token ids and the
  interactions are with respect to the embedding layer, one entry per token pair;
* the zoo's tiny text model, fitted to a synthetic language with *planted*
  pairs, so we can check what the methods find;
* `LLMInteractionAttribution` on a GPT-2 built from a small config (random
  weights, no download), with a word-level tokenizer made offline.'''),
    ("code", r'''import os
import warnings

import matplotlib.pyplot as plt
import torch

# CAPTUM_HO_SMOKE=1 (set by the test suite) shrinks sample counts so the notebook runs in
# seconds; unset it for the full-size run.
SMOKE = os.environ.get("CAPTUM_HO_SMOKE", "0") not in ("", "0")
torch.manual_seed(0)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=UserWarning)'''),
    ("md", r'''## The tiny text model

`TextToy` has two outputs fitted to planted scores:
`y0 = 2 s (1 - 2 [not]) + [loved] - [hated]` (sentiment: the negation flips the
sentiment word `s`) and `y1 = 2 [sun and beach] + [hot]` (a conjunction).
`loved`, `hated` and `hot` matter on their own but interact with nothing.'''),
    ("code", r'''from captum_higher_order.zoo import text_toy

model = text_toy.load_text_toy()
words = ["the", "film", "was", "not", "good", "and", "loved", "it"]
ids, mask = text_toy.encode([words])
print("planted:", text_toy.sentence_scores(words), " model:", model(ids, mask)[0].tolist())'''),
    ("md", r'''## First order vs second order, side by side

Both use the `[PAD]` token as the baseline, mapped through the embedding layer.
Each row of the Integrated Hessians matrix sums to the Integrated Gradients
attribution of that token, so the two pictures are two views of one
decomposition of `f(x) - f(baseline)`.'''),
    ("code", r'''from captum.attr import LayerIntegratedGradients
from captum_higher_order import LayerIntegratedHessians, plot_token_interactions

n_steps = 8 if SMOKE else 32
lih = LayerIntegratedHessians(model, model.embedding)
gamma, delta = lih.attribute(ids, baselines=text_toy.PAD_ID, target=0,
                             additional_forward_args=(mask,), n_steps=n_steps,
                             return_convergence_delta=True)
lig = LayerIntegratedGradients(model, model.embedding).attribute(
    ids, baselines=text_toy.PAD_ID, target=0, additional_forward_args=(mask,), n_steps=200)
print("completeness gap:", float(delta[0]))
print("rows of IH vs LIG:", float((gamma[0].sum(1) - lig[0].sum(-1)).abs().max()))

T = len(words)
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.bar(range(T), lig[0, :T].sum(-1).detach())
ax.set_xticks(range(T), words)
ax.set_title("LayerIntegratedGradients (first order)")
fig, axes = plot_token_interactions(words, gamma[0, :T, :T], k=3,
                                    title="LayerIntegratedHessians (pairs)")'''),
    ("code", r'''off = gamma[0, :T, :T].abs().clone()
off.fill_diagonal_(0)
i, j = divmod(int(off.argmax()), T)
print("strongest pair:", words[i], "x", words[j])
assert {words[i], words[j]} == {"not", "good"}'''),
    ("md", r'''What the second-order view adds: the bars put almost all of the score
on `good` and give `not` a small positive share, which hides how the sentence works.
The pair matrix shows that `not` and `good` act together: their entry is by far the
largest off the diagonal (about -2.4 here, against under 0.2 for every other pair),
the negation that flips the sentiment word.'''),
    ("md", r'''## How often is the planted pair found?

For held-out sentences we rank every pair of real tokens by `|M_ij|` and score
the ranking against the planted pair (ROC-AUC). The first-order baseline ranks
pairs by the product of their LayerIntegratedGradients attributions
`|a_i a_j|`; it is misled by tokens with large main effects (`loved`,
`hated`). `benchmarks/token_interactions.py` runs the full comparison.'''),
    ("code", r'''from captum_higher_order import LayerCrossDerivatives
from captum_higher_order.metrics import roc_auc

sentences = [s for s in text_toy.sample_sentences(200, seed=3)
             if text_toy.planted_token_pairs(s, 0)][: 6 if SMOKE else 40]
ids_h, mask_h = text_toy.encode(sentences)
kw = dict(target=0, additional_forward_args=(mask_h,))
maps = {
    "LayerIntegratedHessians": lih.attribute(ids_h, baselines=0, n_steps=n_steps, **kw),
    "LayerCrossDerivatives": LayerCrossDerivatives(model, model.embedding).attribute(
        ids_h, baselines=0, **kw),
}
a = LayerIntegratedGradients(model, model.embedding).attribute(
    ids_h, baselines=0, n_steps=50, **kw).sum(-1)
maps["|a_i a_j| of LayerIntegratedGradients"] = a[:, :, None] * a[:, None, :]
for name, m in maps.items():
    aucs = []
    for k, s in enumerate(sentences):
        n = len(s)
        iu = torch.triu_indices(n, n, 1)
        truth = torch.zeros(n, n, dtype=torch.bool)
        (p, q), = text_toy.planted_token_pairs(s, 0)
        truth[p, q] = True
        aucs.append(roc_auc(m[k].detach().abs()[iu[0], iu[1]], truth[iu[0], iu[1]]))
    print(f"{name:40s} AUC {sum(aucs) / len(aucs):.3f}")'''),
    ("md", r'''## A GPT-2-style model through `LLMInteractionAttribution`

A GPT-2 from a small config with random weights (so the pairs mean nothing;
the point is the pipeline), a word-level tokenizer built offline with the
`tokenizers` package, Captum's `TextTokenInput`, and a target string. The
score is `log p(target | prompt)`; the result carries the prompt tokens, the
`(T, T)` interactions, the first-order attributions (the row sums) and a plot.
Every second-order pass runs attention on PyTorch's math kernel, since the
fused `scaled_dot_product_attention` kernels cannot be differentiated twice.'''),
    ("code", r'''import tokenizers
import transformers
from captum.attr import TextTokenInput
from captum_higher_order.text import LLMInteractionAttribution

vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]"] + text_toy.VOCAB[2:])}
core = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
core.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]",
                                                 pad_token="[PAD]")
config = transformers.GPT2Config(vocab_size=len(vocab), n_embd=32, n_layer=2, n_head=2,
                                 n_positions=32, attn_implementation="sdpa",
                                 bos_token_id=0, eos_token_id=0)
lm = transformers.GPT2LMHeadModel(config).eval()

llm = LLMInteractionAttribution(LayerIntegratedHessians(lm, lm.get_input_embeddings()),
                                tokenizer)
result = llm.attribute(TextTokenInput("the film was not", tokenizer, baselines="[PAD]"),
                       target="good", n_steps=n_steps)
print(result.input_tokens, "->", result.output_tokens, f"log p = {result.score:.3f}")
print("first order:", [round(float(v), 4) for v in result.token_attr])
fig, axes = result.plot_token_interactions(k=3)'''),
]
