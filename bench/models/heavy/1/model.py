import numpy as np
import torch
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        out = []
        for r in requests:
            x = torch.from_numpy(pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", (x * 2).numpy())]))
        return out
