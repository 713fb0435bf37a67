"""Ray Tune over Ray Train: the typed search space (`space`, pure), one trial as a Ray Train run
(`trial`), the Tuner that runs trials for `ssgan tune` and `ssgan curve` (`tuner`, one typed
`TunerSpec`), the sweep command's outputs (`tune`), the trials' child MLflow runs (`trial_log`,
written on the driver by a Tune callback), and the label curve (`curve`).

May import: every other package but one. Must never import `ssgan.active`, nor MLflow directly
(its runs go through `ssgan.tracking`); `space` and `trial_log` import no Ray. Trials and their
workers never reach MLflow or the project folder: what they learn leaves through Tune's reports.
"""
