"""Mean colour of a resized image: Pillow + PyYAML + a shared user package."""

import numpy as np
import triton_python_backend_utils as pb_utils
import yaml
from PIL import Image

from preproc import resize_to

SETTINGS = yaml.safe_load("size: 32\nresample: bilinear\n")


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            pixels = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            image = resize_to(Image.fromarray(pixels.astype(np.uint8)), SETTINGS["size"])
            mean = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("MEAN_RGB", mean)]))
        return responses
