"""Training: the out-of-time split, the guards, calibration, and a seeded run on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.dataset import load_frames
from features.registry import AttributeInfo
from features.snapshots import build_snapshots
from features.vectorizer import FeatureInput, FeatureVectorizer
from tests.conftest import REPO, generated_store
from training.calibration import fit_calibrator
from training.guards import Minimums, TrainingStopped, check_leakage, check_minimum_data
from training.metrics import expected_calibration_error
from training.split import split_snapshots
from training.train import TrainConfig, train


@pytest.fixture(scope="module")
def frames(tmp_path_factory, taxonomy):  # noqa: ANN001, ANN201
    store = generated_store(tmp_path_factory.mktemp("train"), 6000, 31, taxonomy)
    yield load_frames(store)
    store.close()


def test_out_of_time_split_keeps_leads_apart_and_the_gap(frames, taxonomy) -> None:  # noqa: ANN001
    snaps = build_snapshots(frames.leads, frames.events, frames.feedback)
    split = split_snapshots(snaps, horizon_days=30, valid_share=0.25, seed=1)
    assert split.out_of_time and "out of time" in split.description
    train_leads = set(snaps.loc[split.train, "lead_id"])
    valid = split.fit_half | split.eval_half
    assert not train_leads & set(snaps.loc[valid, "lead_id"]), "no lead on both sides"
    assert not set(snaps.loc[split.fit_half, "lead_id"]) & set(snaps.loc[split.eval_half, "lead_id"])
    assert (snaps.loc[split.train, "as_of"] + pd.Timedelta(days=30) <= split.cutoff).all(), "the gap holds"
    assert (snaps.loc[valid, "as_of"] >= split.cutoff).all()
    assert not (split.train & valid).any() and split.train.sum() > valid.sum() / 2


def test_the_validation_share_is_a_share_of_leads_on_day_granular_data() -> None:
    """Whole-day timestamps, busy early days and sparse late ones: the cutoff counts leads, not days."""
    rng = np.random.default_rng(3)
    days = np.r_[np.repeat(np.arange(60), 150), np.arange(60, 400, 4)]  # 9,000 leads early, 85 late
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    snaps = pd.DataFrame({"lead_id": [f"L{i}" for i in range(days.size)], "as_of": t0 + pd.to_timedelta(days, "D"),
                          "label": (rng.random(days.size) < 0.2).astype(int)})
    split = split_snapshots(snaps, horizon_days=30, valid_share=0.25, seed=0)
    valid = snaps.loc[split.fit_half | split.eval_half]
    share = valid["lead_id"].nunique() / snaps["lead_id"].nunique()
    assert 0.25 <= share < 0.25 + 150 / days.size + 1e-9, f"{share:.3f} of leads held out"
    day_of_cutoff = (snaps["as_of"] == split.cutoff)
    assert day_of_cutoff.sum() == 150 and split.fit_half[day_of_cutoff].sum() + split.eval_half[day_of_cutoff].sum() == 150, \
        "leads arriving at the cutoff moment stay together on the validation side"
    n_valid, n_train = valid["lead_id"].nunique(), int(split.train.sum())
    assert f"validate on {n_valid:,} leads ({n_valid:,} snapshots)" in split.description
    assert f"train on {n_train:,} leads ({n_train:,} snapshots)" in split.description


def test_every_answer_at_arrival_stops_with_the_reason_before_any_split(taxonomy) -> None:  # noqa: ANN001
    """The call that created the lead also decided it: no snapshot, and a message instead of a traceback."""
    from features.dataset import StoreFrames

    n = 500
    created = pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(np.arange(n), "D")
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "created_at": created, "source": "phone"})
    events = pd.DataFrame({"event_id": [f"E{i}" for i in range(n)], "lead_id": leads["lead_id"], "ts": created,
                           "type": "form_submission", "channel": "web"})
    feedback = pd.DataFrame({"lead_id": leads["lead_id"], "ts": created,
                             "outcome": np.where(np.arange(n) % 4 == 0, "prospect", "not_prospect"), "reason": None})
    with pytest.raises(TrainingStopped, match=r"500 leads, all answered at the moment they arrived: there is no "
                                              r"moment before the answer to learn from.*stamp it after the contact"):
        train(StoreFrames(leads, events, feedback, ()), taxonomy)


def test_untimed_data_gets_a_stratified_split_that_says_so() -> None:
    t = pd.Timestamp("2019-01-01", tz="UTC")
    snaps = pd.DataFrame({"lead_id": [f"L{i}" for i in range(400)], "as_of": t, "label": [i % 3 == 0 for i in
                                                                                            range(400)]})
    split = split_snapshots(snaps, valid_share=0.25, seed=0)
    assert not split.out_of_time and split.description.startswith("NOT out of time")
    assert "no timestamps" in split.description
    assert abs(snaps.loc[split.train, "label"].mean() - snaps.loc[split.fit_half | split.eval_half, "label"].mean()) < 0.03


def test_minimum_data_messages_give_the_numbers() -> None:
    with pytest.raises(TrainingStopped, match=r"150 labelled snapshots in the training part \(need 200\)"):
        check_minimum_data(np.r_[np.ones(30), np.zeros(120)], np.ones(20))
    with pytest.raises(TrainingStopped, match=r"a single class in the training part \(every label is 0\)"):
        check_minimum_data(np.zeros(500), np.ones(20), Minimums(positives=0))
    with pytest.raises(TrainingStopped, match=r"3 prospects in the validation part \(need 10\)"):
        check_minimum_data(np.r_[np.ones(50), np.zeros(500)], np.r_[np.ones(3), np.zeros(90)])


def test_leakage_guard_names_a_planted_column_and_after_contact_fields(taxonomy) -> None:  # noqa: ANN001
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.2).astype(int)
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(n)], "created_at": pd.Timestamp("2025-01-01", tz="UTC"),
                          "source": "web", "noise": rng.normal(size=n),
                          "sales_verdict": np.where(y == 1, "hot", "cold"),  # the answer, typed in by sales
                          "won_amount": y * rng.uniform(1000, 5000, n)})
    attrs = (AttributeInfo("noise", "numeric"), AttributeInfo("sales_verdict", "categorical", "after_contact"),
             AttributeInfo("won_amount", "numeric"))
    X = FeatureInput(pd.DataFrame({"lead_id": leads["lead_id"], "as_of": pd.Timestamp("2025-02-01", tz="UTC")}),
                     leads, pd.DataFrame(columns=["lead_id", "ts", "type"]).astype({"ts": "datetime64[us, UTC]"}))
    vec = FeatureVectorizer(taxonomy=taxonomy, attributes=attrs).fit(X)
    matrix = vec.transform_matrix(X)
    with pytest.raises(TrainingStopped) as info:
        check_leakage(matrix, y, vec.feature_set_)
    message = str(info.value)
    assert "attr_won_amount: alone it separates prospects with ROC AUC 1.000" in message
    assert "attr_sales_verdict: the mapping marks it as recorded by sales after contact" in message
    assert "attr_noise" not in message
    allowed = check_leakage(matrix, y, vec.feature_set_, allow=("attr_won_amount", "attr_sales_verdict"))
    assert set(allowed) == {"attr_won_amount", "attr_sales_verdict"}


def test_calibration_repairs_a_distorted_score() -> None:
    rng = np.random.default_rng(1)
    p_true = rng.beta(1, 12, 20_000)
    y = (rng.random(p_true.size) < p_true).astype(int)
    raw = np.sqrt(p_true)  # right order, wrong scale
    calibrator, losses = fit_calibrator(raw, y, seed=0)
    assert set(losses) == {"isotonic", "platt"} and calibrator.method == min(losses, key=losses.get)
    assert expected_calibration_error(y, raw) > 0.1
    assert expected_calibration_error(y, calibrator(raw)) < 0.01


def test_training_on_generated_data_is_calibrated_beats_the_rule_score_and_is_seeded(frames, taxonomy) -> None:  # noqa: ANN001
    config = TrainConfig(seed=3)
    first = train(frames, taxonomy, config)
    model, rule, logistic = (first.metrics[k] for k in ("model", "rule_score", "logistic"))
    assert model["roc_auc"] > rule["roc_auc"] + 0.05
    assert model["roc_auc"] > 0.8 and model["ece"] < 0.02
    assert logistic["roc_auc"] > 0.7 and np.isnan(rule["ece"]), "a points score is no probability"
    assert first.thresholds.ready >= first.thresholds.warming
    assert first.importance["gain"].iloc[0] > 0 and not first.per_channel.empty
    again = train(frames, taxonomy, config)
    assert again.metrics["model"] == model, "same data and seed, same model"


def test_train_command_prints_the_table_and_stops_on_leakage(tmp_path) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from prospect.cli import app
    from tests.conftest import REAL_DATA

    runner = CliRunner()
    home = str(tmp_path)
    assert runner.invoke(app, ["generate", "--leads", "4000", "--home", home]).exit_code == 0
    assert runner.invoke(app, ["ingest", "--home", home]).exit_code == 0
    result = runner.invoke(app, ["train", "--home", home])
    assert result.exit_code == 0, result.output
    for text in ("out of time", "LightGBM (calibrated)", "rule score", "logistic regression", "tiers: prospect-ready"):
        assert text in result.output
    if REAL_DATA.is_dir():
        xhome = str(tmp_path / "x")
        runner.invoke(app, ["ingest", str(REPO / "mappings" / "x_education.yaml"), "--data-dir", str(REAL_DATA),
                            "--home", xhome])
        stopped = runner.invoke(app, ["train", "--home", xhome])
        assert stopped.exit_code == 2 and "attr_lead_quality: the mapping marks it as recorded" in stopped.output
        ok = runner.invoke(app, ["train", "--home", xhome, "--drop-after-contact"])
        assert ok.exit_code == 0 and "NOT out of time" in ok.output


def test_the_evaluation_window_is_rebuilt_from_the_bundle_not_from_defaults(tmp_path, frames, taxonomy) -> None:  # noqa: ANN001
    """Promotion, the report and the model card measure the leads the run held out with *its* share and seed."""
    from report.numbers import compute
    from runtime.bundle import load_bundle
    from training.bundle import save_bundle
    from training.evaluation import SplitParams, evaluation_window

    config = TrainConfig(seed=13, valid_share=0.4)
    result = train(frames, taxonomy, config)
    bundle = load_bundle(save_bundle(result, config, tmp_path / "b"))
    params = SplitParams.from_metadata(bundle.metadata)
    assert (params.valid_share, params.seed) == (0.4, 13) and params.cutoff == result.split.cutoff.isoformat()
    window = evaluation_window(params, frames, taxonomy)
    trained_eval = build_snapshots(frames.leads, frames.events, frames.feedback,
                                   inbound_types=taxonomy.inbound_types).loc[result.split.eval_half]
    assert set(window.snapshots["lead_id"]) == set(trained_eval["lead_id"]) and len(window.snapshots) == len(trained_eval)
    figures = compute(bundle, frames, taxonomy)
    assert figures.n_snapshots == result.metrics["model"]["n"], "the report describes the run's own eval half"
    assert "validation share\n0.4, seed 13" in (tmp_path / "b" / "MODEL_CARD.md").read_text()


def test_promote_only_when_not_worse_on_unseen_leads_force_and_rollback(tmp_path, frames, taxonomy) -> None:  # noqa: ANN001
    import json

    import mlflow

    from training.bundle import save_bundle
    from training.model import ModelParams
    from training.promotion import PromotionError, promote, rollback
    from training.split import in_fit_half
    from runtime.registry import use_tracking
    from training.tracking import log_training

    use_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    models, work = tmp_path / "models", tmp_path / "work"

    def train_and_log(config: TrainConfig, name: str) -> tuple[str, str]:
        result = train(frames, taxonomy, config)
        run_id, version = log_training(result, config, save_bundle(result, config, tmp_path / name))
        return version, run_id

    def champion_version() -> str:
        return json.loads((models / "champion" / "metadata.json").read_text())["version"]

    with pytest.raises(PromotionError, match="no challenger"):
        promote(frames, taxonomy, models, work)
    good, _ = train_and_log(TrainConfig(seed=3, valid_share=0.35), "good")
    first = promote(frames, taxonomy, models, work, replicates=200)
    assert first.promoted and first.champion is None and champion_version() == good
    # a deliberately weak challenger (stumps, one round, no blend), split with another seed and share
    weak, weak_run = train_and_log(TrainConfig(seed=11, valid_share=0.3, blend_weights=(1.0,),
                                               model=ModelParams(num_leaves=2, max_rounds=1)), "weak")
    kept = promote(frames, taxonomy, models, work, replicates=200)
    assert not kept.promoted and kept.champion == good and kept.challenger_auc < kept.champion_auc
    assert kept.difference.high < 0 and kept.difference.low <= kept.difference.diff <= kept.difference.high
    assert champion_version() == good
    # the window: the weak model's eval half (its seed), none of the champion's train or fit leads
    snaps = build_snapshots(frames.leads, frames.events, frames.feedback, inbound_types=taxonomy.inbound_types)
    arrival = snaps.groupby("lead_id")["as_of"].min()
    window = pd.Series(sorted(kept.window_leads))
    weak_cutoff = json.loads((tmp_path / "weak" / "metadata.json").read_text())["split_params"]["cutoff"]
    assert (arrival.loc[window] >= pd.Timestamp(weak_cutoff)).all(), "only leads held out from the challenger"
    assert not in_fit_half(window, 11).any(), "none of the challenger's own fit half"
    assert not in_fit_half(window, 3).any(), "none of the champion's fit half"
    logged = mlflow.get_run(weak_run).data
    assert logged.metrics["promotion_ci95_high"] == pytest.approx(kept.difference.high)
    assert logged.tags["promotion_decision"] == "kept the champion" and "lower bound" in logged.tags["promotion_rule"]
    forced = promote(frames, taxonomy, models, work, force=True, replicates=200)
    assert forced.promoted and champion_version() == weak
    assert rollback(models, work) == (weak, good) and champion_version() == good
    with pytest.raises(PromotionError, match="nothing to roll back to"):
        rollback(models, work)


def test_a_dominant_feature_the_guard_lets_through_is_named_with_the_question(tmp_path, frames, taxonomy) -> None:  # noqa: ANN001
    """A 'duration of the deciding call': moderate alone (far under the 0.95 guard), yet it carries the model."""
    from training.bundle import save_bundle
    from training.guards import single_feature_auc

    rng = np.random.default_rng(5)
    won = frames.leads["lead_id"].isin(frames.feedback.query("outcome == 'prospect'")["lead_id"]).to_numpy()
    duration = np.where(won, rng.gamma(4.5, 60.0, won.size), rng.gamma(2.0, 60.0, won.size))
    attrs = (*frames.attributes, AttributeInfo("call_duration", "numeric", description="Length of the sales call"))
    planted = type(frames)(leads=frames.leads.assign(call_duration=duration), events=frames.events,
                           feedback=frames.feedback, attributes=attrs)
    config = TrainConfig(seed=3)
    result = train(planted, taxonomy, config)
    fs = result.vectorizer.feature_set_
    col = fs.names.index("attr_call_duration")
    snaps = build_snapshots(planted.leads, planted.events, planted.feedback, inbound_types=taxonomy.inbound_types)
    matrix = result.vectorizer.transform_matrix(FeatureInput(snaps[["lead_id", "as_of"]], planted.leads,
                                                             planted.events))
    alone = single_feature_auc(matrix[:, [col]], snaps["label"].to_numpy(), type(fs)(
        vocab=fs.vocab, specs=(fs.specs[col],), categories=fs.categories))
    assert 0.75 < alone["attr_call_duration"] < 0.9, "moderate alone: the leakage guard cannot see it"
    assert len(result.dominance) == 1 and result.dominance[0].startswith("attr_call_duration carries")
    assert "is it known before contact?" in result.dominance[0]
    save_bundle(result, config, tmp_path / "b")
    card = (tmp_path / "b" / "MODEL_CARD.md").read_text()
    assert "Dominant features: attr_call_duration carries" in card
    assert "calibrated on the fit half, the most recent labelled leads" in card, "the default does not refit"
    assert train(frames, taxonomy, config).dominance == [], "generated behaviour alone has no dominant feature"


def test_on_a_drifting_funnel_the_shipped_model_holds_against_its_baseline_and_stays_calibrated(tmp_path,
                                                                                                 taxonomy) -> None:  # noqa: ANN001
    """The simulator's drift scenario: the base rate and channel mix change part-way (known truth)."""
    store = generated_store(tmp_path, 8000, 23, taxonomy, drift_at=0.6)
    result = train(load_frames(store), taxonomy, TrainConfig(seed=3))
    store.close()
    assert "the base rate moved" in result.drift_line
    train_rate = result.drift[result.drift["part"] == "training"]
    valid_rate = result.drift[result.drift["part"] == "validation"]
    assert valid_rate["base_rate"].mean() > 1.5 * train_rate["base_rate"].mean()
    model, logistic = result.metrics["model"], result.metrics["logistic"]
    assert model["roc_auc"] >= logistic["roc_auc"], "the shipped model does not lose to its own baseline"
    assert model["ece"] <= 0.03
    assert set(result.robust.choices) >= {"half_life_none", "half_life_60", "lightgbm_weight_0.5"}


def test_a_blend_must_beat_lightgbm_alone_and_then_the_best_blend_ships() -> None:
    """The blend weight's rule (``training.robust.pick_weight``), on fit-half ROC AUCs as measured.

    The first case is the drift scenario of ``benchmarks/quality.py`` (seed 101, 20,000 leads): the
    earlier rule asked every candidate to beat the one before it by MIN_GAIN, kept 0.75 over the
    better 0.5, and the eval half scored 0.75 under the logistic regression (0.8708 against 0.8713;
    0.5 scored 0.8722).
    """
    from training.robust import BLEND_WEIGHTS, MIN_GAIN, pick_weight

    drift = dict(zip(BLEND_WEIGHTS, (0.8430, 0.8450, 0.8451, 0.8439, 0.8418), strict=True))
    assert pick_weight(drift) == 0.5, "among blends the best one ships, however small its lead"
    olist = dict(zip(BLEND_WEIGHTS, (0.7858, 0.7963, 0.7934, 0.7890, 0.7853), strict=True))
    assert pick_weight(olist) == 0.75
    close = dict(zip(BLEND_WEIGHTS, (0.8877, 0.8877 + MIN_GAIN * 0.9, 0.8868, 0.8852, 0.8829), strict=True))
    assert pick_weight(close) == 1.0, "a blend must beat LightGBM alone by MIN_GAIN"
    assert pick_weight({1.0: 0.8, 0.0: 0.8 + 2 * MIN_GAIN}) == 0.0
    assert pick_weight({0.5: 0.7}) == 0.5, "a grid of one weight is that weight"


def test_an_allowed_leaky_feature_is_recorded_in_the_run_and_the_model_card(tmp_path, frames, taxonomy) -> None:  # noqa: ANN001
    import mlflow

    from training.bundle import save_bundle
    from runtime.registry import use_tracking
    from training.tracking import log_training

    leaky = frames.leads.assign(won=frames.leads["lead_id"].isin(
        frames.feedback.query("outcome == 'prospect'")["lead_id"]).astype(float))
    attrs = (*frames.attributes, AttributeInfo("won", "numeric", description="Deal closed (written after the fact)"))
    planted = type(frames)(leads=leaky, events=frames.events, feedback=frames.feedback, attributes=attrs)
    with pytest.raises(TrainingStopped, match="attr_won"):
        train(planted, taxonomy, TrainConfig(seed=3))
    config = TrainConfig(seed=3, allow_leaky=("attr_won",))
    result = train(planted, taxonomy, config)
    assert "attr_won" in result.leaky_allowed
    use_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    run_id, _ = log_training(result, config, save_bundle(result, config, tmp_path / "bundle"))
    assert mlflow.get_run(run_id).data.params["leaky_allowed"] == "attr_won"
    assert "Leakage guard overrides: attr_won" in (tmp_path / "bundle" / "MODEL_CARD.md").read_text()


def _noisy_leads(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Five features, only the first carries a weak signal: P(prospect) = sigmoid(0.6 x0 - 1) (known truth)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    truth = 1 / (1 + np.exp(-(0.6 * X[:, 0] - 1.0)))
    return X, (rng.random(n) < truth).astype(np.int64), truth


def test_the_refitted_model_is_calibrated_out_of_fold_not_on_its_own_training_leads() -> None:
    """The shipped model is refitted on the fit half too; calibrating on its in-sample scores would overstate.

    Deep trees on weak signal: in-sample scores of the fit half look far better than they are. The
    calibrator must be fitted on cross-fitted scores (each fold scored by a refit that never saw it);
    the counterfactual calibrator fitted on the refitted model's own fit-half scores is visibly worse
    on fresh leads drawn from the same truth, so this test fails if in-sample scores are used.
    """
    from features.registry import FeatureSet, FeatureSpec, Vocabulary
    from training.model import ModelParams
    from training.robust import fit_robust
    from training.rows import LocalRows

    X, y, _ = _noisy_leads(4000, 0)
    fs = FeatureSet(Vocabulary(("a",), ("b",)), tuple(FeatureSpec(f"x{i}", "float", "test", "") for i in range(5)))
    frame = pd.DataFrame(X, columns=fs.names)
    as_of = pd.Series(pd.Timestamp("2024-01-01", tz="UTC"), index=range(len(y)))
    train, fit = np.arange(len(y)) < 2800, np.arange(len(y)) >= 2800
    params = ModelParams(num_leaves=63, min_data_in_leaf=5, learning_rate=0.2, early_stopping_rounds=30)
    model = fit_robust(LocalRows(X, frame), y, as_of, train, fit, fs, params, 0, blend_weights=(1.0,),
                       groups=np.array([f"L{i}" for i in range(len(y))]), refit=True)
    assert model.rounds["refit_rows"] == 4000 and model.rounds["refit_trees"] >= model.rounds["early_stopped_trees"]
    in_sample = model.raw(X[fit], frame[fit])
    assert roc_auc_score(y[fit], in_sample) > roc_auc_score(y[fit], model.fit_probabilities) + 0.05, \
        "the refitted model has seen the fit half: its own scores there are in-sample"
    X_new, y_new, truth_new = _noisy_leads(20000, 1)
    fresh = pd.DataFrame(X_new, columns=fs.names)
    honest = model.probability(X_new, fresh)
    naive, _ = fit_calibrator(in_sample, y[fit], seed=0)
    naive_p = np.clip(naive(model.raw(X_new, fresh)), 0, 1)
    assert expected_calibration_error(y_new, honest) < 0.03
    assert np.mean(np.abs(honest - truth_new)) < 0.75 * np.mean(np.abs(naive_p - truth_new)), \
        "calibrated out of fold, probabilities stay close to the truth; calibrated in sample, they spread too far"
