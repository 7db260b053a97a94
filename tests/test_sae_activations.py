"""Activation extraction (latentforge.sae.activations) and downstream fidelity (latentforge.sae.fidelity)
on tiny randomly initialised BERT and GPT-2 models built offline, each result checked against the
model's own hidden states, the tokenizer's own encoding, or a hand-written hook."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from latentforge.data import iter_chunks
from latentforge.errors import InputError
from latentforge.sae import ActivationStore, extract_activations, is_activations_dir, open_activations, read_texts
from latentforge.sae.fidelity import downstream_fidelity

transformers = pytest.importorskip("transformers")

WORDS = "the a cat dog sat on mat ran fast slow big small red blue bird tree".split()
BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
TEXTS = ["the cat sat on the mat", "a dog", "big red bird ran fast", "the zebra sat", "small blue tree"]


def _bert_tokenizer():
    return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(BERT_VOCAB)})


def _bert_config():
    return transformers.BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    transformers.BertModel(_bert_config()).eval().save_pretrained(path)
    _bert_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bert_mlm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert_mlm")
    torch.manual_seed(1)
    transformers.BertForMaskedLM(_bert_config()).eval().save_pretrained(path)
    _bert_tokenizer().save_pretrained(path)
    return path


GPT_VOCAB = ["<|endoftext|>"] + WORDS
# a fixed successor for every word: a language a 2-layer model learns in a few dozen steps
SUCCESSOR = {w: WORDS[(7 * i + 3) % len(WORDS)] for i, w in enumerate(WORDS)}


def _chain(start: str, n: int) -> str:
    words = [start]
    while len(words) < n:
        words.append(SUCCESSOR[words[-1]])
    return " ".join(words)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers

    path = tmp_path_factory.mktemp("gpt2")
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(GPT_VOCAB)}, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                     eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=len(GPT_VOCAB), n_positions=128,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    # a short training run, so that the hooked block matters and zero ablation hurts
    ids = torch.tensor([tokenizer(_chain(w, 12))["input_ids"] for w in WORDS])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    model.eval().save_pretrained(path)
    return path


def _hidden(model_dir, cls, ids, index=1):
    """Hidden state ``index`` (1 = output of the first block) of one unpadded sequence."""
    model = cls.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[index][0].numpy()


def _all_rows(store: ActivationStore) -> dict[str, np.ndarray]:
    return store.read(np.arange(store.n_tokens))


# ---------------------------------------------------------------------------------------------
# extraction


@pytest.mark.parametrize("keep_special", [False, True])
def test_bert_rows_are_the_layer_output_at_every_kept_token(bert_dir, tmp_path, keep_special):
    store = extract_activations(bert_dir, "encoder.layer.0", TEXTS, tmp_path / "acts", batch_size=2,
                                keep_special=keep_special)
    got = _all_rows(store)
    tok = _bert_tokenizer()
    assert store.manifest["special_ids_excluded"] == ([] if keep_special else [0, 2, 3, 4])  # [UNK] is content
    assert store.manifest["n_texts"] == store.manifest["n_sequences"] == len(TEXTS)
    assert store.manifest["layer"] == "encoder.layer.0" and store.manifest["model_class"] == "BertModel"
    start = 0
    for seq, text in enumerate(TEXTS):
        ids = tok(text)["input_ids"]
        keep = slice(None) if keep_special else slice(1, -1)  # [CLS] ... [SEP]
        want_ids, want_pos = np.array(ids)[keep], np.arange(len(ids))[keep]
        rows = slice(start, start + len(want_ids))
        np.testing.assert_array_equal(got["token_ids"][rows], want_ids)
        np.testing.assert_array_equal(got["positions"][rows], want_pos)
        assert (got["sequences"][rows] == seq).all()
        ref = _hidden(bert_dir, transformers.BertModel, ids)[keep]
        np.testing.assert_allclose(got["activations"][rows], ref, atol=1e-5)
        start += len(want_ids)
    assert start == store.n_tokens  # nothing else stored: no padding (batches mix lengths)
    assert tok.pad_token_id not in got["token_ids"]
    assert (1 in got["token_ids"]) and store.token_strings([1]) == ["[UNK]"]  # "zebra"


def test_gpt2_block_rows_match_hidden_states_and_the_tokenizer(gpt2_dir, tmp_path):
    texts = ["the cat sat", "a dog ran fast on the mat", "bird"]
    store = extract_activations(gpt2_dir, "h.0", texts, tmp_path / "acts", batch_size=3)
    assert store.manifest["layer"] == "transformer.h.0"  # the base-model name resolves in the LM-head model
    assert store.manifest["model_class"] == "GPT2LMHeadModel"
    tokenizer = transformers.AutoTokenizer.from_pretrained(gpt2_dir)
    got, start = _all_rows(store), 0
    for seq, text in enumerate(texts):
        ids = tokenizer(text)["input_ids"]
        assert len(ids) == len(text.split())  # GPT-2 style: no special token added
        rows = slice(start, start + len(ids))
        np.testing.assert_array_equal(got["token_ids"][rows], ids)
        np.testing.assert_array_equal(got["positions"][rows], np.arange(len(ids)))
        assert (got["sequences"][rows] == seq).all()
        ref = _hidden(gpt2_dir, transformers.GPT2LMHeadModel, ids)
        np.testing.assert_allclose(got["activations"][rows], ref, atol=1e-5)
        start += len(ids)
    assert start == store.n_tokens
    assert store.token_strings(tokenizer("dog ran")["input_ids"]) == ["dog", "ran"]
    vocab = json.loads((store.path / "vocab.json").read_text())
    assert set(vocab) == {str(i) for i in np.unique(got["token_ids"])}


def test_long_texts_are_cut_into_windows_and_empty_ones_skipped(bert_dir, tmp_path):
    long = "the cat sat on the mat a dog ran fast big"  # 11 words: windows of 4 + 2 specials
    texts = [long, "", "red bird"]
    store = extract_activations(bert_dir, "encoder.layer.1", texts, tmp_path / "acts", max_length=6,
                                keep_special=True, batch_size=4)
    tok = _bert_tokenizer()
    content = tok(long, add_special_tokens=False)["input_ids"]
    windows = [[2, *content[i:i + 4], 3] for i in range(0, len(content), 4)] + [tok("red bird")["input_ids"]]
    assert store.manifest["n_texts"] == 3
    # the empty text gives [CLS] [SEP], kept with keep_special: a sequence of its own
    windows.insert(3, [2, 3])
    assert store.manifest["n_sequences"] == len(windows) == 5
    got = _all_rows(store)
    for seq, ids in enumerate(windows):
        at = got["sequences"] == seq
        assert len(ids) <= 6
        np.testing.assert_array_equal(got["token_ids"][at], ids)
        np.testing.assert_array_equal(got["positions"][at], np.arange(len(ids)))
        np.testing.assert_allclose(got["activations"][at], _hidden(bert_dir, transformers.BertModel, ids, 2),
                                   atol=1e-5)
    # without the special tokens the empty text stores nothing and takes no sequence number
    store = extract_activations(bert_dir, "encoder.layer.1", texts, tmp_path / "acts2", max_length=6)
    assert store.manifest["n_sequences"] == 4 and store.manifest["n_texts"] == 3
    np.testing.assert_array_equal(np.unique(_all_rows(store)["sequences"]), np.arange(4))
    assert store.n_tokens == len(content) + 2


def test_shards_stream_every_row_once_and_read_by_index(bert_dir, tmp_path, capsys):
    texts = TEXTS * 3
    store = extract_activations(bert_dir, "encoder.layer.0", iter(texts), tmp_path / "acts", batch_size=4,
                                shard_tokens=7, progress=True)
    assert f"{store.n_tokens:,} tokens written, {len(texts)} texts read" in capsys.readouterr().err
    rows_per_shard = [s["rows"] for s in store.manifest["shards"]]
    assert len(rows_per_shard) >= 5 and all(r == 7 for r in rows_per_shard[:-1]) and sum(rows_per_shard) == store.n_tokens
    files = sorted(p.name for p in store.path.iterdir())
    assert files == sorted(["manifest.json", "vocab.json"] + [s["file"] for s in store.manifest["shards"]])
    manifest_time = (store.path / "manifest.json").stat().st_mtime_ns
    assert all((store.path / f).stat().st_mtime_ns <= manifest_time for f in files)  # written last
    # the shards, concatenated by hand, are the reference
    from safetensors.numpy import load_file

    shards = [load_file(store.path / s["file"]) for s in store.manifest["shards"]]
    ref = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    source = store.source(fragment_rows=3)
    assert source.n_rows == store.n_tokens
    seen, data = [], []
    for chunk in iter_chunks(source, shuffle=True, seed=3, shuffle_buffer=8):
        seen.append(chunk.rows)
        data.append(np.asarray(chunk.data))
    seen, data = np.concatenate(seen), np.concatenate(data)
    np.testing.assert_array_equal(np.sort(seen), np.arange(store.n_tokens))
    np.testing.assert_array_equal(data, ref["activations"][seen])
    # read: any order, repeats, across shards
    rows = np.array([store.n_tokens - 1, 0, 8, 8, 20, 3])
    got = store.read(rows)
    for k in ("activations", "token_ids", "sequences", "positions"):
        np.testing.assert_array_equal(got[k], ref[k][rows])
    assert store.read(np.array([], dtype=int))["activations"].shape == (0, store.d)
    with pytest.raises(InputError, match="row indices"):
        store.read([store.n_tokens])
    # context: the neighbours within the row's own sequence only
    row = 8
    seq = ref["sequences"][row]
    same = np.flatnonzero(ref["sequences"] == seq)
    tokens, at = store.context(row, before=100, after=100)
    assert tokens == store.token_strings(ref["token_ids"][same]) and tokens[at] == store.token_strings([ref["token_ids"][row]])[0]
    assert at == row - same[0]
    tokens, at = store.context(row, before=1, after=0)
    assert len(tokens) == (2 if row - 1 in same else 1) and at == len(tokens) - 1


def test_float16_storage(bert_dir, tmp_path):
    full = extract_activations(bert_dir, "encoder.layer.0", TEXTS[:2], tmp_path / "a32")
    half = extract_activations(bert_dir, "encoder.layer.0", TEXTS[:2], tmp_path / "a16", dtype="float16")
    a = half.read(np.arange(half.n_tokens))["activations"]
    assert a.dtype == np.float16 and half.manifest["dtype"] == "float16"
    np.testing.assert_allclose(a, _all_rows(full)["activations"], atol=1e-2)


def test_a_failure_midway_leaves_no_output_and_no_temporary_dir(bert_dir, tmp_path):
    def texts():
        yield from TEXTS * 2
        raise RuntimeError("disk on fire")

    out = tmp_path / "acts"
    with pytest.raises(RuntimeError, match="disk on fire"):
        extract_activations(bert_dir, "encoder.layer.0", texts(), out, batch_size=2, shard_tokens=3)
    assert list(tmp_path.iterdir()) == []
    # a non-string text is an InputError, with the same clean-up
    with pytest.raises(InputError, match="text 2"):
        extract_activations(bert_dir, "encoder.layer.0", ["a cat", "dog", 3], out)
    assert list(tmp_path.iterdir()) == []
    # a folder of the user's is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(InputError):
        extract_activations(bert_dir, "encoder.layer.0", TEXTS, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    # an existing activations dir is replaced whole
    extract_activations(bert_dir, "encoder.layer.0", TEXTS, out)
    store = extract_activations(bert_dir, "encoder.layer.0", TEXTS[:1], out)
    assert store.manifest["n_texts"] == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["acts", "mine"]


def test_errors_name_the_culprit(bert_dir, tmp_path):
    with pytest.raises(InputError, match=r"'encoder\.layer\.0'") as err:
        extract_activations(bert_dir, "encoder.layr.0", TEXTS, tmp_path / "a")
    assert "encoder.layr.0" in str(err.value)
    with pytest.raises(InputError, match="encoder.layer"):
        extract_activations(bert_dir, "blocks.3", TEXTS, tmp_path / "a")
    not_model = tmp_path / "not_model"
    not_model.mkdir()
    (not_model / "weights.bin").write_bytes(b"\0" * 10)
    with pytest.raises(InputError, match="not a transformers model"):
        extract_activations(not_model, "encoder.layer.0", TEXTS, tmp_path / "a")
    with pytest.raises(InputError, match="not found"):
        extract_activations(tmp_path / "missing", "encoder.layer.0", TEXTS, tmp_path / "a")
    with pytest.raises(InputError, match="dtype"):
        extract_activations(bert_dir, "encoder.layer.0", TEXTS, tmp_path / "a", dtype="int8")
    with pytest.raises(InputError, match="single string"):
        extract_activations(bert_dir, "encoder.layer.0", "the cat", tmp_path / "a")
    with pytest.raises(InputError, match="max_length"):
        extract_activations(bert_dir, "encoder.layer.0", TEXTS, tmp_path / "a", max_length=1000)
    with pytest.raises(InputError, match="no tokens"):
        extract_activations(bert_dir, "encoder.layer.0", ["", ""], tmp_path / "a")
    assert not (tmp_path / "a").exists()
    with pytest.raises(InputError, match="not_model"):
        open_activations(not_model)
    assert not is_activations_dir(not_model) and not is_activations_dir(tmp_path / "missing")
    (not_model / "manifest.json").write_text(json.dumps({"kind": "model"}))
    with pytest.raises(InputError, match="not an activations manifest"):
        open_activations(not_model)
    store = extract_activations(bert_dir, "encoder.layer.0", TEXTS, tmp_path / "ok")
    assert is_activations_dir(store.path)
    os.remove(store.path / store.manifest["shards"][0]["file"])
    with pytest.raises(InputError, match="missing"):
        open_activations(store.path)


def test_read_texts_from_lines_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "docs.txt"
    path.write_text("first doc\n\n   \nsecond  doc \r\nthird\n", encoding="utf-8")
    assert list(read_texts(path)) == ["first doc", "second  doc ", "third"]
    with pytest.raises(InputError, match="Parquet"):
        read_texts(path, column="text")
    table = pa.table({"id": list(range(5)), "text": ["a", None, "b", "", "c"], "tag": ["x"] * 5})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2)
    assert list(read_texts(tmp_path / "t.parquet", column="text")) == ["a", "b", "c"]
    with pytest.raises(InputError, match="2 string columns"):
        read_texts(tmp_path / "t.parquet")
    with pytest.raises(InputError, match="'body' not found"):
        read_texts(tmp_path / "t.parquet", column="body")
    with pytest.raises(InputError, match="not strings"):
        read_texts(tmp_path / "t.parquet", column="id")
    folder = tmp_path / "parts"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"text": [f"doc {i}a", f"doc {i}b"]}), folder / f"part-{i}.parquet")
    assert list(read_texts(folder)) == ["doc 0a", "doc 0b", "doc 1a", "doc 1b"]
    with pytest.raises(InputError, match="not found"):
        read_texts(tmp_path / "nope.txt")


# ---------------------------------------------------------------------------------------------
# fidelity


def test_causal_lm_fidelity_identity_zero_and_noise(gpt2_dir):
    texts = [_chain(w, 10) for w in WORDS[:6]] + ["the cat"]
    seen = []

    def identity(x):
        seen.append(x.shape)
        return x

    ident = downstream_fidelity(gpt2_dir, "h.0", texts, identity, batch_size=4)
    assert ident["kind"] == "causal_lm" and ident["n_texts"] == len(texts)
    assert ident["n_tokens"] == sum(len(t.split()) for t in texts) == sum(s[0] for s in seen)  # only real tokens
    assert all(s[1] == 32 for s in seen)
    assert ident["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-5)
    assert ident["kl_spliced"] == pytest.approx(0.0, abs=1e-7) and ident["ce_spliced"] == ident["ce_clean"]
    assert ident["ce_zero"] > ident["ce_clean"] + 0.5  # the trained block matters
    assert ident["n_predictions"] == ident["n_tokens"] - len(texts)
    zero = downstream_fidelity(gpt2_dir, "h.0", texts, torch.zeros_like, batch_size=4)
    assert zero["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-6)
    assert zero["kl_spliced"] == pytest.approx(zero["kl_zero"], rel=1e-6) and zero["kl_zero"] > 0
    gen = torch.Generator().manual_seed(0)
    noisy = downstream_fidelity(
        gpt2_dir, "h.0", texts, lambda x: x + 1.5 * x.std() * torch.randn(x.shape, generator=gen), batch_size=4)
    assert 0.0 < noisy["ce_loss_recovered"] < 1.0
    assert 0.0 < noisy["kl_spliced"] < noisy["kl_zero"]
    # independent reference: the model's own loss on one text
    one = downstream_fidelity(gpt2_dir, "transformer.h.0", texts[:1], identity)
    model = transformers.GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    ids = torch.tensor([transformers.AutoTokenizer.from_pretrained(gpt2_dir)(texts[0])["input_ids"]])
    with torch.no_grad():
        assert one["ce_clean"] == pytest.approx(float(model(input_ids=ids, labels=ids).loss), rel=1e-5)


def test_encoder_fidelity_cosine_and_special_tokens_untouched(bert_dir, bert_mlm_dir):
    ident = downstream_fidelity(bert_dir, "encoder.layer.0", TEXTS, lambda x: x, batch_size=2)
    assert ident["kind"] == "encoder" and ident["n_texts"] == len(TEXTS)
    assert ident["cosine_pooled"] == pytest.approx(1.0, abs=1e-6) and "kl_spliced" not in ident
    zero = downstream_fidelity(bert_dir, "encoder.layer.0", TEXTS, torch.zeros_like, batch_size=2)
    assert zero["cosine_pooled"] == pytest.approx(zero["cosine_pooled_zero"], abs=1e-9)
    assert zero["cosine_pooled_zero"] < 0.999
    # reference by hand: zero the first layer's output at the content tokens only ([CLS]/[SEP] stay)
    model = transformers.BertModel.from_pretrained(bert_dir).eval()
    ids = torch.tensor([_bert_tokenizer()(TEXTS[0])["input_ids"]])

    def ablate(_m, _a, out):
        x = out[0].clone() if isinstance(out, tuple) else out.clone()
        x[:, 1:-1] = 0
        return (x, *out[1:]) if isinstance(out, tuple) else x

    with torch.no_grad():
        clean = model(input_ids=ids).last_hidden_state.mean(1)
        handle = model.encoder.layer[0].register_forward_hook(ablate)
        ablated = model(input_ids=ids).last_hidden_state.mean(1)
        handle.remove()
    ref = float(torch.nn.functional.cosine_similarity(clean, ablated))
    one = downstream_fidelity(bert_dir, "encoder.layer.0", TEXTS[:1], torch.zeros_like)
    assert one["cosine_pooled_zero"] == pytest.approx(ref, abs=1e-5)
    assert one["n_tokens"] == ids.shape[1] - 2
    # a masked-LM head adds the KL of its distributions
    mlm = downstream_fidelity(bert_mlm_dir, "bert.encoder.layer.0", TEXTS, lambda x: x)
    assert mlm["kl_spliced"] == pytest.approx(0.0, abs=1e-7) and mlm["kl_zero"] > 0
    assert mlm["cosine_pooled"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(InputError, match="same shape"):
        downstream_fidelity(bert_dir, "encoder.layer.0", TEXTS[:1], lambda x: x[:, :4])
