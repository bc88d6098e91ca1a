// Python entry point of csl_ext._C. The ops register themselves with the
// dispatcher (TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL) when the shared
// library is loaded, so the module itself only needs to exist and say how it
// was built.
#include <Python.h>

static PyModuleDef csl_ext_module = {PyModuleDef_HEAD_INIT, "_C",
                                     "csl_ext compiled operators", -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* module = PyModule_Create(&csl_ext_module);
  if (module == nullptr) return nullptr;
#ifdef WITH_CUDA
  PyModule_AddIntConstant(module, "with_cuda", 1);
#else
  PyModule_AddIntConstant(module, "with_cuda", 0);
#endif
  return module;
}
