# lit configuration for the IR before/after tests of passes (MLIR style):
# each .yaml here is a recipe whose `# RUN:` lines print the IR with ctk and
# pipe it into FileCheck against the `# CHECK` lines of the same file.
# CMake runs one file per CTest test (tests/passes/CMakeLists.txt).
import os

import lit.formats

config.name = "compress-ir"
config.test_format = lit.formats.ShTest(execute_external=True)
config.suffixes = [".yaml"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = lit_config.params.get("exec_root", config.test_source_root)

ctk = lit_config.params["ctk"]
filecheck = lit_config.params["filecheck"]
fixtures = os.path.join(os.path.dirname(__file__), "..", "fixtures", "models")
config.substitutions.append(("%ctk", ctk))
config.substitutions.append(("%fixtures", os.path.abspath(fixtures)))
config.substitutions.append(("FileCheck", filecheck))
config.environment["COMPRESS_LOG_LEVEL"] = "error"
config.environment["COMPRESS_NUM_THREADS"] = "1"
for name in ("HOME", "COMPRESS_FASHION_MNIST_DIR"):
    if name in os.environ:
        config.environment[name] = os.environ[name]
