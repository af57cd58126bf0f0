from PIL import Image


def resize_to(image: Image.Image, size: int) -> Image.Image:
    return image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
