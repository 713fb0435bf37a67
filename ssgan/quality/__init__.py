"""How good a model is: the metric registry and pure statistics (`measures`: FID, KID, Inception
Score, the metric names), the networks whose features they compare (`feature_nets`, `inception`,
`reference`: the reference classifier), G's score during training (`probe`), the evaluate stage
(`evaluate`) and the image sets `ssgan fid` compares (`image_sets`).

May import: `ssgan.config`, `ssgan.metrics`, `ssgan.util`, `ssgan.data`, `ssgan.training`,
`ssgan.tracking`. Must never import Ray, torch.distributed, `ssgan.driver` or `ssgan.sweep`;
`measures` imports no torch at all.
"""
