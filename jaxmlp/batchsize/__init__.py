"""Batch size, measured and adapted (McCandlish et al. 2018; Shallue et al. 2018).

    result = jaxmlp.batch_study(config, [32, 64, ..., 4096], "val_accuracy=0.975", train, val)

Modules, imports pointing down this list:

    studydir    the study's run directory: study.json, results.jsonl, the summaries
    plots       batch_study.png: steps against examples, steps against batch size, the best rates
    adaptive_run  measure_adaptive: an adaptive_batch run's (S, E), against the frontier
    study       batch_study / plan_study / run_study / StudySettings: each batch size's races, then the fits
    race        run_race: one learning-rate × seed grid at one batch size, to the target
    programs    race_programs: the race's compiled init / order / advance / score
    result      BatchRow, StudyResult: the rows, the fits and the table
    target      Target, parse_target, next_check: what is reached, and when it is checked
    frontier    fit_frontier / bootstrap_frontier: S(B) = S_min (1 + B_crit / B);
                fit_eps_opt: eps_opt(B) = eps_max / (1 + B_noise / B)  (pure numpy)
    lr_grid     scaled_center, lr_grid, best_lr, widen, race_decided: the learning-rate grid of
                one batch size  (pure numpy)
"""
from jaxmlp.batchsize.frontier import EpsFit, Frontier, bootstrap_frontier, fit_eps_opt, fit_frontier
from jaxmlp.batchsize.lr_grid import BestLR, best_lr, grid_ratio, lr_grid, lr_steps, race_decided, scaled_center, widen

__all__ = ["Frontier", "fit_frontier", "bootstrap_frontier", "EpsFit", "fit_eps_opt", "BestLR", "lr_steps",
           "race_decided", "scaled_center", "lr_grid", "grid_ratio", "best_lr", "widen"]
