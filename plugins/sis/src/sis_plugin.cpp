// SISSynthesize: the TensorRT plugin (IPluginV3: OneCore + OneBuildV2 + OneRuntime) that runs the
// memory-bank update kernels of sis_synthesis.cu inside an engine, batched over the tracked objects.
//
// ONNX node: op_type "SISSynthesize", domain / plugin_namespace "mixqsam2", plugin_version "1",
// attributes kind (0 topk-to-newest = sis, 1 closest-pair = sis-pair, 2 drop-oldest = fifo,
// 3 drop-most-similar = prune), top_k, temperature (the creator's fields; defaults: the paper's sis).
// Tensors (N objects, K slots, HW tokens, C channels, P pointer dim; T = float32 or float16):
//   inputs  0 bank_features [N,K,HW,C] T   1 bank_pointers [N,K,P] T   2 bank_positions [N,K] f32
//           3 bank_scores [N,K] f32        4 bank_counts [N,K] f32     5 bank_valid [N,K] int32 (0/1)
//           6 new_features [N,HW,C] T      7 new_pointer [N,P] T       8 new_position [N] f32
//           9 new_score [N] f32
//   outputs 0-5: the updated bank, shapes and types of inputs 0-5. Output i aliases input i
//           (IPluginV3OneBuildV2::getAliasedInput, used when the builder enables
//           PreviewFeature::kALIASED_PLUGIN_IO_10_03); otherwise enqueue copies the bank first.
// bank_valid is int32 because plugins take no BOOL/UINT8 tensors (NvInferRuntime.h,
// getOutputDataTypes); the exported graph casts it from/to bool around the node.
//
// The library registers through IPluginRegistry::loadLibrary: it exports getCreators and
// setLoggerFinder, and needs no libnvinfer symbol.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "sis_synthesis.h"

namespace {

using namespace nvinfer1;

constexpr char kPluginName[] = "SISSynthesize";
constexpr char kPluginVersion[] = "1";
constexpr char kPluginNamespace[] = "mixqsam2";

enum TensorIndex : int32_t {
    kFeatures, kPointers, kPositions, kScores, kCounts, kValid,  // the bank: inputs and outputs 0-5
    kNewFeatures, kNewPointer, kNewPosition, kNewScore,
    kNbInputs
};
constexpr int32_t kNbOutputs = kNewFeatures;
constexpr std::array<int32_t, kNbInputs> kRanks{4, 3, 2, 2, 2, 2, 3, 2, 1, 1};
constexpr sis_rule kDefaultRule{SIS_TOPK_TO_NEWEST, 3, 1.f};  // RULES["sis"] of the Python spec

ILoggerFinder* gLoggerFinder = nullptr;

void logError(std::string const& message) {
    ILogger* logger = gLoggerFinder != nullptr ? gLoggerFinder->findLogger() : nullptr;
    if (logger != nullptr) logger->log(ILogger::Severity::kERROR, (std::string(kPluginName) + ": " + message).c_str());
}

// Expected type of in/out tensor `pos` given the bank's float type; output j (pos kNbInputs + j)
// has the type of input j.
DataType expectedType(int32_t pos, DataType bankType) {
    switch (pos % kNbInputs) {
    case kFeatures: case kPointers: case kNewFeatures: case kNewPointer: return bankType;
    case kValid: return DataType::kINT32;
    default: return DataType::kFLOAT;
    }
}

size_t elementBytes(DataType type) { return type == DataType::kHALF ? 2 : 4; }

size_t volume(Dims const& dims) {
    size_t count = 1;
    for (int32_t i = 0; i < dims.nbDims; ++i) count *= static_cast<size_t>(dims.d[i]);
    return count;
}

Dims dimsOf(PluginTensorDesc const& desc) { return desc.dims; }
Dims dimsOf(DynamicPluginTensorDesc const& desc) { return desc.desc.dims; }

// Whether two dimensions agree; -1 (not known yet, at build time) agrees with anything.
bool same(int64_t a, int64_t b) { return a < 0 || b < 0 || a == b; }

// An empty string when the input shapes fit the node's contract, else what is wrong.
template <typename Desc>
std::string shapeError(Desc const* in, int32_t nbInputs) {
    if (nbInputs != kNbInputs) return "expects 10 inputs, got " + std::to_string(nbInputs);
    for (int32_t i = 0; i < kNbInputs; ++i)
        if (dimsOf(in[i]).nbDims != kRanks[i]) return "input " + std::to_string(i) + " has the wrong rank";
    Dims const features = dimsOf(in[kFeatures]);
    int64_t const objects = features.d[0], capacity = features.d[1];
    if (capacity >= 0 && (capacity < 2 || capacity > SIS_MAX_CAPACITY))
        return "bank capacity must be in [2, " + std::to_string(SIS_MAX_CAPACITY) + "], got " +
               std::to_string(capacity);
    for (int32_t i = 0; i < kNbInputs; ++i) {
        Dims const d = dimsOf(in[i]);
        if (!same(d.d[0], objects)) return "input " + std::to_string(i) + " has another number of objects";
        if (i < kNewFeatures && !same(d.d[1], capacity)) return "input " + std::to_string(i) + " has another capacity";
    }
    Dims const pointers = dimsOf(in[kPointers]), newFeatures = dimsOf(in[kNewFeatures]);
    if (!same(newFeatures.d[1], features.d[2]) || !same(newFeatures.d[2], features.d[3]) ||
        !same(dimsOf(in[kNewPointer]).d[1], pointers.d[2]))
        return "the new memory's shape differs from the bank's";
    return {};
}

// The rule from the node's fields; false (and `error`) when a field has the wrong type or the
// kernels would refuse the rule.
bool readRule(PluginFieldCollection const* fc, sis_rule& rule, std::string& error) {
    rule = kDefaultRule;
    for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
        PluginField const& field = fc->fields[i];
        bool const isInt = field.type == PluginFieldType::kINT32 && field.length == 1;
        bool const isFloat = field.type == PluginFieldType::kFLOAT32 && field.length == 1;
        if (std::strcmp(field.name, "kind") == 0 && isInt) rule.kind = *static_cast<int32_t const*>(field.data);
        else if (std::strcmp(field.name, "top_k") == 0 && isInt) rule.top_k = *static_cast<int32_t const*>(field.data);
        else if (std::strcmp(field.name, "temperature") == 0 && isFloat)
            rule.temperature = *static_cast<float const*>(field.data);
        else {
            error = std::string("unexpected field '") + field.name + "' (kind, top_k: int32; temperature: float32)";
            return false;
        }
    }
    if (!sis_rule_is_valid(rule)) {
        error = "invalid rule: kind " + std::to_string(rule.kind) + ", top_k " + std::to_string(rule.top_k) +
                ", temperature " + std::to_string(rule.temperature) +
                " (kind 0-3; kind 0 needs top_k >= 2 and temperature > 0)";
        return false;
    }
    return true;
}

class SISSynthesizePlugin final : public IPluginV3,
                                  public IPluginV3OneCore,
                                  public IPluginV3OneBuildV2,
                                  public IPluginV3OneRuntime {
public:
    explicit SISSynthesizePlugin(sis_rule rule) : mRule(rule) {}

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
        case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
        case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuildV2*>(this);
        case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }
    IPluginV3* clone() noexcept override { return new (std::nothrow) SISSynthesizePlugin(mRule); }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuildV2
    int32_t getNbOutputs() const noexcept override { return kNbOutputs; }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbOutputs != kNbOutputs || nbInputs != kNbInputs) return -1;
        for (int32_t i = 0; i < kNbOutputs; ++i) outputTypes[i] = inputTypes[i];
        return 0;
    }

    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbOutputs != kNbOutputs || nbInputs != kNbInputs) return -1;
        for (int32_t i = 0; i < kNbOutputs; ++i) outputs[i] = inputs[i];
        return 0;
    }

    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return false;
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR) return false;
        if (pos == kFeatures) return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
        return desc.type == expectedType(pos, inOut[kFeatures].desc.type);
    }

    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                            int32_t /*nbOutputs*/) noexcept override {
        return reportShapeError(shapeError(in, nbInputs));
    }

    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t /*nbInputs*/,
                            DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override {
        Dims const& largest = inputs[kFeatures].max;  // [N_max, K, HW, C]
        return sis_workspace_bytes(static_cast<int>(largest.d[1]), static_cast<int>(largest.d[0]));
    }

    int32_t getAliasedInput(int32_t outputIndex) noexcept override {
        return outputIndex >= 0 && outputIndex < kNbOutputs ? outputIndex : -1;
    }

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                          int32_t /*nbOutputs*/) noexcept override {
        return reportShapeError(shapeError(in, nbInputs));
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override {
        for (int32_t i = 0; i < kNbOutputs; ++i) {  // without aliasing, the update runs on a copy
            if (outputs[i] == inputs[i]) continue;
            size_t const bytes = volume(inputDesc[i].dims) * elementBytes(inputDesc[i].type);
            cudaError_t const copied = cudaMemcpyAsync(outputs[i], inputs[i], bytes, cudaMemcpyDeviceToDevice, stream);
            if (copied != cudaSuccess) return static_cast<int32_t>(copied);
        }
        Dims const& features = inputDesc[kFeatures].dims;  // [N, K, HW, C]
        sis_dtype const dtype = inputDesc[kFeatures].type == DataType::kHALF ? SIS_FLOAT16 : SIS_FLOAT32;
        return sis_update(dtype, static_cast<int>(features.d[0]), outputs[kFeatures], outputs[kPointers],
                          static_cast<float*>(outputs[kPositions]), static_cast<float*>(outputs[kScores]),
                          static_cast<float*>(outputs[kCounts]), static_cast<int32_t*>(outputs[kValid]),
                          static_cast<int>(features.d[1]), static_cast<int>(features.d[2] * features.d[3]),
                          static_cast<int>(inputDesc[kPointers].dims.d[2]), inputs[kNewFeatures], inputs[kNewPointer],
                          static_cast<float const*>(inputs[kNewPosition]), static_cast<float const*>(inputs[kNewScore]),
                          mRule, workspace, stream);
    }

    IPluginV3* attachToContext(IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    PluginFieldCollection const* getFieldsToSerialize() noexcept override {
        mSerialized = {PluginField("kind", &mRule.kind, PluginFieldType::kINT32, 1),
                       PluginField("top_k", &mRule.top_k, PluginFieldType::kINT32, 1),
                       PluginField("temperature", &mRule.temperature, PluginFieldType::kFLOAT32, 1)};
        mSerializedCollection.nbFields = static_cast<int32_t>(mSerialized.size());
        mSerializedCollection.fields = mSerialized.data();
        return &mSerializedCollection;
    }

private:
    static int32_t reportShapeError(std::string const& error) {
        if (error.empty()) return 0;
        logError(error);
        return -1;
    }

    sis_rule mRule;
    std::array<PluginField, 3> mSerialized{};
    PluginFieldCollection mSerializedCollection{};
};

class SISSynthesizeCreator final : public IPluginCreatorV3One {
public:
    SISSynthesizeCreator() {
        mFieldCollection.nbFields = static_cast<int32_t>(mFieldNames.size());
        mFieldCollection.fields = mFieldNames.data();
    }

    IPluginV3* createPlugin(char const* name, PluginFieldCollection const* fc, TensorRTPhase /*phase*/) noexcept override {
        sis_rule rule{};
        std::string error;
        if (!readRule(fc, rule, error)) {
            logError(std::string(name != nullptr ? name : "?") + ": " + error);
            return nullptr;
        }
        return new (std::nothrow) SISSynthesizePlugin(rule);
    }

    PluginFieldCollection const* getFieldNames() noexcept override { return &mFieldCollection; }
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

private:
    std::array<PluginField, 3> mFieldNames{PluginField("kind", nullptr, PluginFieldType::kINT32, 1),
                                           PluginField("top_k", nullptr, PluginFieldType::kINT32, 1),
                                           PluginField("temperature", nullptr, PluginFieldType::kFLOAT32, 1)};
    PluginFieldCollection mFieldCollection{};
};

}  // namespace

// Entry points of IPluginRegistry::loadLibrary.
extern "C" SIS_API void setLoggerFinder(nvinfer1::ILoggerFinder* finder) { gLoggerFinder = finder; }

extern "C" SIS_API nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static SISSynthesizeCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
