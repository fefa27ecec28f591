"""The arithmetic of a batch-size study (McCandlish et al. 2018; Shallue et al. 2018): how many
steps and examples a target takes at each batch size, the critical batch size, and the tuned
learning rate of each batch size. Pure numpy, no JAX.

Modules, imports pointing down this list:

    frontier    Frontier / fit_frontier / bootstrap_frontier: S(B) = S_min (1 + B_crit / B);
                EpsFit / fit_eps_opt: eps_opt(B) = eps_max / (1 + B_noise / B);
                steps_to_target, resolution_ok, check_interval: measuring S from a curve
    lr_grid     scaled_center, lr_grid, best_lr, widen: the learning-rate grid of one batch size
"""
from jaxmlp.batch_study.frontier import (EpsFit, Frontier, bootstrap_frontier, check_interval, fit_eps_opt,
                                         fit_frontier, resolution_ok, steps_to_target)
from jaxmlp.batch_study.lr_grid import BestLR, best_lr, grid_ratio, lr_grid, scaled_center, widen

__all__ = ["Frontier", "fit_frontier", "bootstrap_frontier", "EpsFit", "fit_eps_opt", "steps_to_target",
           "resolution_ok", "check_interval", "BestLR", "scaled_center", "lr_grid", "grid_ratio", "best_lr", "widen"]
