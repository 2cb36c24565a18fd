package dev.edgeage.demo

import android.content.Context
import android.util.Log
import dev.edgeage.core.AgeGender
import dev.edgeage.core.InputTensor
import dev.edgeage.core.ModelSpec
import dev.edgeage.core.OutputDecoder
import dev.edgeage.core.StageTimer
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate

/** Where the interpreter runs the model. */
enum class Accelerator(val label: String) {
    XNNPACK("CPU, XNNPACK"),
    CPU("CPU, built-in kernels"),
    GPU("GPU delegate"),
}

/**
 * One of the asset .tflite files in a LiteRT interpreter, set up as chosen in the app. Pre- and
 * post-processing come from the core module (tested on the host against LiteRT in Python); this class only
 * moves bytes in and out of the interpreter.
 */
class AgeGenderModel(
    context: Context,
    val spec: ModelSpec,
    val file: ModelSpec.ModelFile,
    requested: Accelerator,
    threads: Int,
) : Closeable {
    private var gpuDelegate: GpuDelegate? = null
    private val interpreter: Interpreter
    /** What actually runs: GPU falls back to XNNPACK where the delegate cannot take the model. */
    val accelerator: Accelerator
    private val outputOrder: IntArray
    private val outputBuffers: List<ByteBuffer>
    // Allocated once: predict() runs for every face of every frame.
    private val input: ByteBuffer = InputTensor.allocate(spec, file)
    private val outputs: Map<Int, Any>

    init {
        val model = mapAsset(context, file.file)
        var gpuInterpreter: Interpreter? = null
        if (requested == Accelerator.GPU) {
            val compatibility = CompatibilityList()
            if (compatibility.isDelegateSupportedOnThisDevice) {
                try {
                    val delegate = GpuDelegate(compatibility.bestOptionsForThisDevice)
                    gpuInterpreter = Interpreter(model, Interpreter.Options().addDelegate(delegate))
                    gpuDelegate = delegate
                } catch (e: Exception) {
                    Log.w(TAG, "GPU delegate refused ${file.file}: ${e.message}")
                }
            }
        }
        accelerator = if (gpuInterpreter != null) Accelerator.GPU else if (requested == Accelerator.CPU) Accelerator.CPU else Accelerator.XNNPACK
        interpreter = gpuInterpreter ?: Interpreter(
            model,
            Interpreter.Options().setNumThreads(threads).setUseXNNPACK(accelerator == Accelerator.XNNPACK),
        )
        val shape = interpreter.getInputTensor(0).shape()
        check(shape.contentEquals(intArrayOf(1, spec.inputSize, spec.inputSize, 3))) {
            "${file.file}: input shape ${shape.contentToString()} does not match the manifest's size ${spec.inputSize}; reinstall the model"
        }
        val names = Array(interpreter.outputTensorCount) { interpreter.getOutputTensor(it).name() }
        outputOrder = OutputDecoder.tensorOrder(names, spec)
        outputBuffers = List(interpreter.outputTensorCount) {
            ByteBuffer.allocateDirect(interpreter.getOutputTensor(it).numBytes()).order(ByteOrder.nativeOrder())
        }
        outputs = outputBuffers.withIndex().associate { (index, buffer) -> index to buffer }
    }

    /** Face pixels from FaceCrop (inputSize x inputSize x 3, 0..255) -> age and P(female). With a [timer], the
     *  tensor, inference and decode stages are timed (the benchmark mode). */
    fun predict(pixels: FloatArray, timer: StageTimer? = null): AgeGender {
        timer?.start("tensor")
        InputTensor.write(InputTensor.normalise(pixels, spec), file, input)
        outputBuffers.forEach { it.rewind() }
        timer?.start("inference")
        interpreter.runForMultipleInputsOutputs(arrayOf<Any>(input), outputs)
        timer?.start("decode")
        val values = FloatArray(outputOrder.size) { k ->
            val index = outputOrder[k]
            val tensor = interpreter.getOutputTensor(index)
            val buffer = outputBuffers[index].also { it.rewind() }
            val stored = when (tensor.dataType()) {
                DataType.FLOAT32 -> buffer.float
                DataType.INT8 -> buffer.get().toFloat()
                DataType.UINT8 -> (buffer.get().toInt() and 0xFF).toFloat()
                else -> error("${file.file}: output ${tensor.name()} has unsupported type ${tensor.dataType()}")
            }
            val quantization = tensor.quantizationParams()
            OutputDecoder.dequantize(stored, quantization.scale.toDouble(), quantization.zeroPoint)
        }
        return OutputDecoder.decode(values, spec)
    }

    override fun close() {
        interpreter.close()
        gpuDelegate?.close()
    }

    companion object {
        private const val TAG = "AgeGenderModel"

        /** Memory-map an uncompressed asset (build.gradle.kts keeps .tflite files uncompressed). */
        fun mapAsset(context: Context, name: String): MappedByteBuffer =
            context.assets.openFd(name).use { descriptor ->
                FileInputStream(descriptor.fileDescriptor).channel.use { channel ->
                    channel.map(FileChannel.MapMode.READ_ONLY, descriptor.startOffset, descriptor.declaredLength)
                }
            }
    }
}
