// Drives the SISSynthesize plugin library through TensorRT's plugin interfaces on the host (no GPU,
// no libnvinfer): what the ONNX parser and the builder ask before any kernel runs. Prints one
// "fact value" line per question; tests/plugins/test_sis_plugin_build.py checks the answers.
#include <NvInferRuntime.h>

#include <cstdio>
#include <vector>

#include "sis_synthesis.h"

using namespace nvinfer1;

extern "C" IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace {

IPluginV3* create(IPluginCreatorV3One& creator, std::vector<PluginField> const& fields, TensorRTPhase phase) {
    PluginFieldCollection const fc{static_cast<int32_t>(fields.size()), fields.data()};
    return creator.createPlugin("sis_update", &fc, phase);
}

Dims dims(std::vector<int64_t> const& values) {
    Dims d{};
    d.nbDims = static_cast<int32_t>(values.size());
    for (size_t i = 0; i < values.size(); ++i) d.d[i] = values[i];
    return d;
}

// The node's ten inputs then six outputs for N objects (max_objects at most), capacity K, HW x C
// memory tokens, P pointer dims; `bank` the float type of features/pointers, `valid` that of the flags.
std::vector<DynamicPluginTensorDesc> tensors(int64_t n, int64_t max_objects, int64_t k, DataType bank, DataType valid) {
    int64_t const hw = 16, c = 8, p = 4;
    std::vector<std::vector<int64_t>> const shapes{{n, k, hw, c}, {n, k, p}, {n, k}, {n, k}, {n, k}, {n, k},
                                                   {n, hw, c}, {n, p}, {n}, {n}};
    std::vector<DataType> const types{bank, bank, DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, valid,
                                      bank, bank, DataType::kFLOAT, DataType::kFLOAT};
    std::vector<DynamicPluginTensorDesc> descs;
    for (int repeat = 0; repeat < 2; ++repeat)  // inputs, then outputs 0-5 (the same as inputs 0-5)
        for (size_t i = 0; i < (repeat == 0 ? shapes.size() : 6); ++i) {
            DynamicPluginTensorDesc desc{};
            desc.desc.dims = dims(shapes[i]);
            desc.desc.type = types[i];
            desc.desc.format = TensorFormat::kLINEAR;
            desc.min = desc.opt = desc.max = desc.desc.dims;
            desc.max.d[0] = max_objects;
            descs.push_back(desc);
        }
    return descs;
}

bool allFormatsSupported(IPluginV3OneBuild& build, std::vector<DynamicPluginTensorDesc> const& descs) {
    for (int32_t pos = 0; pos < static_cast<int32_t>(descs.size()); ++pos)
        if (!build.supportsFormatCombination(pos, descs.data(), 10, 6)) return false;
    return true;
}

void printRule(char const* label, IPluginV3OneRuntime& runtime) {
    PluginFieldCollection const* fc = runtime.getFieldsToSerialize();
    std::printf("%s", label);
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        if (f.type == PluginFieldType::kFLOAT32) std::printf(" %s=%g", f.name, *static_cast<float const*>(f.data));
        else std::printf(" %s=%d", f.name, *static_cast<int32_t const*>(f.data));
    }
    std::printf("\n");
}

}  // namespace

int main() {
    int32_t count = 0;
    IPluginCreatorInterface* const* creators = getCreators(count);
    std::printf("creators %d\n", count);
    std::printf("creator_kind %s\n", creators[0]->getInterfaceInfo().kind);
    auto& creator = *static_cast<IPluginCreatorV3One*>(creators[0]);
    std::printf("identity %s %s %s\n", creator.getPluginName(), creator.getPluginVersion(), creator.getPluginNamespace());
    PluginFieldCollection const* names = creator.getFieldNames();
    std::printf("fields");
    for (int32_t i = 0; i < names->nbFields; ++i) std::printf(" %s", names->fields[i].name);
    std::printf("\n");

    int32_t const sis = SIS_TOPK_TO_NEWEST, one = 1, four = 4;
    float const temperature = 0.5f;
    std::printf("refuses_top_k_1 %d\n", create(creator, {{"kind", &sis, PluginFieldType::kINT32, 1},
                                                        {"top_k", &one, PluginFieldType::kINT32, 1}},
                                              TensorRTPhase::kBUILD) == nullptr);
    std::printf("refuses_float_kind %d\n", create(creator, {{"kind", &temperature, PluginFieldType::kFLOAT32, 1}},
                                                 TensorRTPhase::kBUILD) == nullptr);
    IPluginV3* defaults = create(creator, {}, TensorRTPhase::kBUILD);
    printRule("default_rule", *static_cast<IPluginV3OneRuntime*>(
                                  defaults->getCapabilityInterface(PluginCapabilityType::kRUNTIME)));
    IPluginV3* plugin = create(creator, {{"kind", &sis, PluginFieldType::kINT32, 1},
                                         {"top_k", &four, PluginFieldType::kINT32, 1},
                                         {"temperature", &temperature, PluginFieldType::kFLOAT32, 1}},
                               TensorRTPhase::kBUILD);
    auto* core = static_cast<IPluginV3OneCore*>(plugin->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuildV2*>(plugin->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* runtime = static_cast<IPluginV3OneRuntime*>(plugin->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    std::printf("plugin_identity %s %s %s\n", core->getPluginName(), core->getPluginVersion(), core->getPluginNamespace());
    std::printf("capabilities %s/%d %s/%d %s/%d\n", core->getInterfaceInfo().kind, core->getInterfaceInfo().major,
                build->getInterfaceInfo().kind, build->getInterfaceInfo().major, runtime->getInterfaceInfo().kind,
                runtime->getInterfaceInfo().major);
    printRule("rule", *runtime);
    IPluginV3* restored = creator.createPlugin("sis_update", runtime->getFieldsToSerialize(), TensorRTPhase::kRUNTIME);
    printRule("restored_rule", *static_cast<IPluginV3OneRuntime*>(
                                   restored->getCapabilityInterface(PluginCapabilityType::kRUNTIME)));

    std::printf("outputs %d\n", build->getNbOutputs());
    std::printf("aliases");
    for (int32_t i = 0; i < 7; ++i) std::printf(" %d", build->getAliasedInput(i));
    std::printf("\n");
    std::vector<DataType> in(10, DataType::kFLOAT), out(6);
    in[0] = in[1] = in[6] = in[7] = DataType::kHALF;
    in[5] = DataType::kINT32;
    build->getOutputDataTypes(out.data(), 6, in.data(), 10);
    std::printf("output_types");
    for (DataType t : out) std::printf(" %d", static_cast<int32_t>(t));
    std::printf("\n");
    std::printf("formats_fp32 %d\n", allFormatsSupported(*build, tensors(2, 16, 6, DataType::kFLOAT, DataType::kINT32)));
    std::printf("formats_fp16 %d\n", allFormatsSupported(*build, tensors(2, 16, 6, DataType::kHALF, DataType::kINT32)));
    std::printf("formats_bool_valid %d\n", allFormatsSupported(*build, tensors(2, 16, 6, DataType::kHALF, DataType::kBOOL)));
    std::printf("formats_int8_bank %d\n", allFormatsSupported(*build, tensors(2, 16, 6, DataType::kINT8, DataType::kINT32)));

    auto const good = tensors(-1, 16, 6, DataType::kFLOAT, DataType::kINT32);
    auto const too_large = tensors(-1, 16, SIS_MAX_CAPACITY + 1, DataType::kFLOAT, DataType::kINT32);
    std::printf("configure_ok %d\n", build->configurePlugin(good.data(), 10, good.data() + 10, 6));
    std::printf("configure_capacity_65 %d\n", build->configurePlugin(too_large.data(), 10, too_large.data() + 10, 6));
    std::printf("configure_9_inputs %d\n", build->configurePlugin(good.data(), 9, good.data() + 10, 6));
    std::printf("workspace %zu %zu\n", build->getWorkspaceSize(good.data(), 10, good.data() + 10, 6),
                sis_workspace_bytes(6, 16));
    for (IPluginV3* p : {defaults, plugin, restored}) delete p;
    return 0;
}
